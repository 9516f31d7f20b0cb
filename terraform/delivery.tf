# Delivery statuses: every send asks Twilio for its statuses (StatusCallback) on POST
# /{channel}/status of this API; the status function verifies each like the inbound webhook, stores
# it with its message and writes the events a failure implies to the outbox.

locals {
  # Where Twilio reaches the API: the configured public base URL (a custom domain), else the stage's
  # own URL. The senders name it in StatusCallback; the webhook and the status function verify the
  # signatures against it.
  public_base_url = coalesce(var.public_base_url, module.api.invoke_url)

  status_routes = {
    for channel in keys(var.channels) : "${channel}-status" => {
      path          = "${channel}/status"
      function_name = module.status_callback.function_name
      invoke_arn    = module.status_callback.invoke_arn
      throttle      = var.webhook_throttle
    }
  }
}

module "status_callback" {
  source = "./modules/lambda_function"

  name        = "${local.name}-status-callback"
  description = "Verifies and stores Twilio's delivery statuses; a failed message hands its conversation on."
  filename    = "${local.build_dir}/status_callback.zip"
  layers      = [module.shared_layer.arn]
  # Twilio gives up after 15 s; a status is one GetItem and one write.
  timeout            = 10
  memory_size        = 256
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "status-callback"
    # The URL Twilio signed: this function is behind the API, so it cannot read the stage's URL
    # from it; empty lets it rebuild the URL from the request, as the webhook does.
    PUBLIC_BASE_URL       = var.public_base_url
    MAX_BODY_BYTES        = tostring(var.max_webhook_body_bytes)
    CONVERSATION_TTL_DAYS = tostring(var.conversation_ttl_days)
  })

  policy_statements = [
    {
      sid       = "ReadTenants"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.company_data]
    },
    {
      # The conversation the callback names (its tenant is checked), and what a failure changes.
      sid       = "Conversations"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.conversations]
    },
    {
      # The status on its message item; a failure's events as outbox items.
      sid       = "Messages"
      actions   = ["dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.messages]
    },
    {
      # Only the tenants' Twilio credentials: the auth token (or signing key) verifies the signature.
      sid       = "TwilioSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.twilio_secrets_arn]
    },
  ]
}
