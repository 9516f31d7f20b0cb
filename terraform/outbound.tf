# Outbound: a client's POST /initiate-conversation publishes ConversationRequested; a rule per
# channel routes it to that channel's outbound queue; the channel sender writes and sends the
# approved template. Adding a channel to var.channels adds its queue, rule and mapping: no code.

locals {
  outbound_rule_keys = [for channel in keys(var.channels) : "${channel}-outbound"]

  outbound_event_rules = {
    for channel in keys(var.channels) : "${channel}-outbound" => {
      description = "Conversations clients start on ${channel}, to the ${channel} outbound queue."
      event_pattern = jsonencode({
        source        = ["ai-comms.initiate-conversation"]
        "detail-type" = ["ConversationRequested"]
        detail        = { channel = [channel], route = ["outbound"] }
      })
      target_arn = module.outbound_queue[channel].arn
    }
  }

  # AWS's advice for queues that trigger Lambda: six times the function's timeout. The sender also
  # extends the visibility of the message it works on (heartbeat), so a slow AI call is never
  # handed to a second consumer even when a lower value is chosen.
  outbound_visibility_timeout_seconds = coalesce(var.outbound_visibility_timeout_seconds, 6 * var.channel_sender_timeout_seconds)

  # Routes for the tenants' own systems: an API key each, bound to the projects that name it.
  client_routes = {
    "initiate-conversation" = {
      path             = "initiate-conversation"
      function_name    = module.initiate_conversation.function_name
      invoke_arn       = module.initiate_conversation.invoke_arn
      api_key_required = true
      throttle         = var.api_throttle
    }
  }

  # Clients whose key value is kept in Secrets Manager; the others get a value API Gateway generates.
  api_key_secret_ids = { for client, key in var.api_keys : client => key.secret_id if key.secret_id != null }
  api_key_values     = { for client, secret in data.aws_secretsmanager_secret_version.api_key : client => jsondecode(secret.secret_string).api_key }
}

# The value is read at plan time and stored in the state (as API Gateway's own key resource does);
# it is never in tfvars or git. The secret holds {"api_key": "<at least 20 characters>"}.
data "aws_secretsmanager_secret_version" "api_key" {
  for_each = local.api_key_secret_ids

  secret_id = each.value
}

module "outbound_queue" {
  source   = "./modules/queue"
  for_each = var.channels

  name                       = "${local.name}-${each.key}-outbound"
  visibility_timeout_seconds = local.outbound_visibility_timeout_seconds
  allowed_event_rule_arns    = [local.rule_arns["${each.key}-outbound"]]
}

module "initiate_conversation" {
  source = "./modules/lambda_function"

  name        = "${local.name}-initiate-conversation"
  description = "Validates a client's request to start a conversation and publishes ConversationRequested."
  filename    = "${local.build_dir}/initiate_conversation.zip"
  layers      = [module.shared_layer.arn]
  # One tenant read (cached), one idempotency write, one publish: far below API Gateway's 29 s.
  timeout            = 10
  memory_size        = 512
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "initiate-conversation"
    MAX_BODY_BYTES          = tostring(var.max_initiate_body_bytes)
    # Which client each API key id belongs to: a project names the clients that may act for it.
    API_CLIENTS = jsonencode(module.api.api_client_key_ids)
  })

  policy_statements = [
    {
      sid       = "ReadTenants"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.company_data]
    },
    {
      sid       = "RequestIdempotency"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
      resources = [module.tables.arns.idempotency]
    },
    {
      sid       = "PublishRequests"
      actions   = ["events:PutEvents"]
      resources = [module.event_routing.bus_arn]
    },
    {
      # An opted-out recipient is refused before anything is published.
      sid       = "ReadConsent"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.consent]
    },
  ]
}

module "channel_sender" {
  source = "./modules/lambda_function"

  name        = "${local.name}-channel-sender"
  description = "Creates each requested conversation, has the AI fill its approved template and sends it once."
  filename    = "${local.build_dir}/channel_sender.zip"
  layers      = [module.shared_layer.arn]
  timeout     = var.channel_sender_timeout_seconds
  memory_size = 512
  # Twilio and OpenAI rate-limit per account; a cap keeps a burst of requests from becoming a burst of 429s.
  reserved_concurrent_executions = var.channel_sender_reserved_concurrency
  tracing_mode                   = var.lambda_tracing_mode
  log_retention_days             = var.log_retention_days

  # One message per invocation: the heartbeat keeps exactly the message being worked on invisible,
  # so no queued sibling outlives its visibility timeout behind a slow AI call.
  sqs_event_sources = [for channel in keys(var.channels) : { queue_arn = module.outbound_queue[channel].arn, batch_size = 1 }]

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "channel-sender"
    CONVERSATION_TTL_DAYS   = tostring(var.conversation_ttl_days)
    OPENAI_BASE_URL         = var.openai_base_url
    TWILIO_API_BASE_URL     = var.twilio_api_base_url
    OPENAI_TIMEOUT_SECONDS  = tostring(var.openai_timeout_seconds)
    OPENAI_MAX_RETRIES      = tostring(var.openai_max_retries)
    TWILIO_TIMEOUT_SECONDS  = "10"
    MAX_RECEIVES            = "3"
    RETRY_BASE_SECONDS      = tostring(var.reply_retry_base_seconds)
    TENANT_PAUSE_SECONDS    = tostring(var.tenant_pause_seconds)
    # The template's StatusCallback: POST <public base>/<channel>/status.
    PUBLIC_BASE_URL = local.public_base_url
  })

  policy_statements = [
    {
      sid       = "Conversations"
      actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.conversations]
    },
    {
      # The template's message item, written in one transaction with the conversation's outcome.
      sid       = "Messages"
      actions   = ["dynamodb:UpdateItem"]
      resources = [module.tables.arns.messages]
    },
    {
      # The tenant's pause (a tenant-wide failure): only the "pause#<company>" partitions, never a
      # tenant's configuration.
      sid       = "TenantPauses"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
      resources = [module.tables.arns.company_data]
      conditions = [{
        test     = "ForAllValues:StringLike"
        variable = "dynamodb:LeadingKeys"
        values   = ["pause#*"]
      }]
    },
    {
      # A paused tenant's records wait as delayed copies of themselves.
      sid       = "ParkRecords"
      actions   = ["sqs:SendMessage"]
      resources = [for queue in module.outbound_queue : queue.arn]
    },
    {
      # The heartbeat addresses the queue by URL, looked up once from the record's queue ARN.
      sid       = "FindOwnQueues"
      actions   = ["sqs:GetQueueUrl"]
      resources = [for queue in module.outbound_queue : queue.arn]
    },
    {
      # Consent, read again right before the template is sent; a recipient Twilio reports as
      # blocked (21610) is recorded as opted out, with its history item.
      sid       = "Consent"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.consent]
    },
    {
      sid       = "TenantSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.twilio_secrets_arn, local.openai_secrets_arn]
    },
  ]
}

# A template sent but not recorded is never retried (that would send it twice): alarm on its line.
module "channel_sender_post_send_alarm" {
  source = "./modules/critical_log_alarm"

  log_group_name    = module.channel_sender.log_group_name
  metric_name       = "ChannelSenderPostSendUpdateFailures"
  alarm_name_prefix = module.channel_sender.function_name
  alarm_topic_arn   = module.monitoring.alerts_topic_arn
}

check "outbound_visibility_timeout" {
  assert {
    condition     = local.outbound_visibility_timeout_seconds >= var.channel_sender_timeout_seconds
    error_message = "AWS refuses an SQS trigger whose queue visibility timeout is below the function timeout; values below it are for emulators only."
  }
}

