# The conversations API: people (and their tools) list a tenant's conversations, read one, send the
# customer a message, hand a conversation back to the AI or close it. Client routes like
# /initiate-conversation: an API key each, bound to the projects whose api_clients name it.

locals {
  # Where Twilio posts the statuses of agent messages: local.public_base_url, spelled from the API's
  # id rather than read from its stage, whose deployment depends on this function's own routes.
  # The check below proves the two agree.
  conversations_public_base_url = coalesce(var.public_base_url, "https://${module.api.id}.execute-api.${data.aws_region.current.name}.${data.aws_partition.current.dns_suffix}/${terraform.workspace}")

  conversation_routes = {
    for key, route in {
      "conversations-list"     = { path = "conversations", method = "GET" }
      "conversations-get"      = { path = "conversations/{conversation_id}", method = "GET" }
      "conversations-message"  = { path = "conversations/{conversation_id}/messages", method = "POST" }
      "conversations-handback" = { path = "conversations/{conversation_id}/handback", method = "POST" }
      "conversations-close"    = { path = "conversations/{conversation_id}/close", method = "POST" }
      } : key => {
      path             = route.path
      method           = route.method
      function_name    = module.conversations_api.function_name
      invoke_arn       = module.conversations_api.invoke_arn
      api_key_required = true
      throttle         = var.api_throttle
    }
  }
}

module "conversations_api" {
  source = "./modules/lambda_function"

  name        = "${local.name}-conversations-api"
  description = "The human side: conversations by status, history, agent messages, handback and close."
  filename    = "${local.build_dir}/conversations_api.zip"
  layers      = [module.shared_layer.arn]
  # An agent message is at most three Twilio sends of up to 5 s each (one credential re-read
  # more): inside API Gateway's 29 s, which ends the request whatever the function does.
  timeout            = 25
  memory_size        = 512
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "conversations-api"
    # Which client each API key id belongs to: a project names the clients that may act for it.
    API_CLIENTS            = jsonencode(module.api.api_client_key_ids)
    CONVERSATION_TTL_DAYS  = tostring(var.conversation_ttl_days)
    TWILIO_API_BASE_URL    = var.twilio_api_base_url
    TWILIO_TIMEOUT_SECONDS = "5"
    # Each agent message's StatusCallback: POST <public base>/<channel>/status.
    PUBLIC_BASE_URL = local.conversations_public_base_url
  })

  policy_statements = [
    {
      sid       = "ReadTenants"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.company_data]
    },
    {
      # A conversation by its id (keys only), a tenant's conversations by status.
      sid       = "ConversationIndexes"
      actions   = ["dynamodb:Query"]
      resources = [module.tables.conversations_indexes["by-tenant-status"], module.tables.conversations_indexes["by-conversation-id"]]
    },
    {
      # The record read strongly consistently; handback, close and an agent message's activity.
      sid       = "Conversations"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.conversations]
    },
    {
      # The history in order; an agent message's parts, written in one transaction.
      sid       = "Messages"
      actions   = ["dynamodb:Query", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.messages]
    },
    {
      # Each agent message's record: sent once per message id.
      sid       = "AgentMessageRecords"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.idempotency]
    },
    {
      # Consent, read right before every send; a recipient Twilio reports as blocked (21610) is
      # recorded as opted out, with its history item.
      sid       = "Consent"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.consent]
    },
    {
      # Only the tenants' Twilio credentials: this function never calls the AI.
      sid       = "TwilioSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.twilio_secrets_arn]
    },
  ]
}

# An agent message sent but not recorded is never resent (that could send it twice): alarm on its line.
module "conversations_api_post_send_alarm" {
  source = "./modules/critical_log_alarm"

  log_group_name    = module.conversations_api.log_group_name
  metric_name       = "ConversationsApiPostSendUpdateFailures"
  alarm_name_prefix = module.conversations_api.function_name
  alarm_topic_arn   = module.monitoring.alerts_topic_arn
}

check "conversations_public_base_url" {
  assert {
    condition     = local.conversations_public_base_url == local.public_base_url
    error_message = "The conversations API's status callback base URL differs from the stage's URL."
  }
}
