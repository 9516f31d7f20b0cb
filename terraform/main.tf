# AI Multi-Comms Engine. Every name starts with "<name_prefix>-<workspace>" so several workspaces
# (environments, test runs) live side by side in one account.

locals {
  name = "${var.name_prefix}-${terraform.workspace}"

  # What every function needs; each adds its own settings.
  function_environment = {
    POWERTOOLS_METRICS_NAMESPACE = "AiComms"
    POWERTOOLS_LOG_LEVEL         = var.lambda_log_level
    COMPANY_TABLE                = module.tables.names.company_data
    CONVERSATIONS_TABLE          = module.tables.names.conversations
    IDEMPOTENCY_TABLE            = module.tables.names.idempotency
    MESSAGES_TABLE               = module.tables.names.messages
    CONSENT_TABLE                = module.tables.names.consent
    EVENT_BUS_NAME               = module.event_routing.bus_name
    CHANNELS = jsonencode({ for name, channel in var.channels : name => { address_prefix = channel.address_prefix }
    })
    ENVIRONMENT = terraform.workspace
  }
  build_dir            = coalesce(var.build_dir, "${path.root}/../build")
  tenant_secret_prefix = "${local.name}/tenants/"
  # Tenant secrets are named "<prefix><company>/<project>/twilio" and ".../openai" (ProjectConfig
  # checks the suffix), so each function is granted exactly the kind it uses. Secrets Manager adds
  # six random characters to a secret's name in its ARN.
  tenant_secrets_arn_base = "arn:${data.aws_partition.current.partition}:secretsmanager:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:secret:${local.tenant_secret_prefix}"
  twilio_secrets_arn      = "${local.tenant_secrets_arn_base}*/twilio-??????"
  openai_secrets_arn      = "${local.tenant_secrets_arn_base}*/openai-??????"

  # Six times the reply processor's timeout, as AWS advises for queues that trigger Lambda.
  ai_reply_visibility_timeout_seconds = 360

  # Rule ARNs are derived from the rule names (the documented format for a custom bus) rather
  # than read from the rules: the rules target the queues, so the queue policies reading the
  # rules' ARNs would close a dependency cycle. The check below proves the derivation.
  rule_keys = concat(
    [for channel in keys(var.channels) : "${channel}-ai-reply"],
    [for channel in keys(var.channels) : "${channel}-consent"],
    local.outbound_rule_keys,
    ["handoff", "unmatched"],
    values(local.subscriber_rule_keys),
  )
  rule_arns = {
    for key in local.rule_keys :
    key => "arn:${data.aws_partition.current.partition}:events:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:rule/${local.name}/${local.name}-${key}"
  }

  # Routing is data: one AI-reply rule per channel plus the fixed handoff and unmatched rules.
  # Adding a channel to var.channels adds its queue, rule and webhook route; no code changes.
  event_rules = merge(
    local.outbound_event_rules,
    {
      for channel in keys(var.channels) : "${channel}-ai-reply" => {
        description = "Replies on ${channel} the AI answers, to the debounced ${channel} AI-reply queue."
        event_pattern = jsonencode({
          source        = ["ai-comms.twilio-webhook"]
          "detail-type" = ["ReplyReceived"]
          detail        = { channel = [channel], route = ["ai_reply"] }
        })
        target_arn = module.ai_reply_queue[channel].arn
      }
    },
    {
      # A keyword that changed consent gets the tenant's confirmation whoever has the conversation:
      # the reply processor takes it from the AI-reply queue even when its route is handoff.
      for channel in keys(var.channels) : "${channel}-consent" => {
        description = "Consent changes on ${channel} outside the AI route, to the ${channel} AI-reply queue for their confirmation."
        event_pattern = jsonencode({
          source        = ["ai-comms.twilio-webhook"]
          "detail-type" = ["ReplyReceived"]
          detail = {
            channel        = [channel]
            route          = [{ "anything-but" = ["ai_reply"] }]
            consent_change = ["opt_out", "opt_in"]
          }
        })
        target_arn = module.ai_reply_queue[channel].arn
      }
    },
    {
      handoff = {
        description = "Conversations a human takes over, to the handoff queue."
        event_pattern = jsonencode({
          "detail-type" = ["ReplyReceived", "HandoffRequested"]
          detail        = { route = ["handoff"] }
        })
        target_arn = module.handoff_queue.arn
      }
      unmatched = {
        description = "Replies of the archive from before every accepted message opened a conversation (kept for replays)."
        event_pattern = jsonencode({
          "detail-type" = ["ReplyReceived"]
          detail        = { route = ["unmatched"] }
        })
        target_arn = coalesce(var.unmatched_target_arn, module.handoff_queue.arn)
      }
    },
  )
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

module "tables" {
  source = "./modules/tables"

  name                = local.name
  deletion_protection = var.table_deletion_protection
}

# Queues. Each one's policy admits exactly the rules that target it.

module "ai_reply_queue" {
  source   = "./modules/queue"
  for_each = var.channels

  name                       = "${local.name}-${each.key}-ai-reply"
  delay_seconds              = each.value.debounce_seconds
  visibility_timeout_seconds = local.ai_reply_visibility_timeout_seconds
  allowed_event_rule_arns    = [local.rule_arns["${each.key}-ai-reply"], local.rule_arns["${each.key}-consent"]]
}

module "handoff_queue" {
  source = "./modules/queue"

  name = "${local.name}-handoff"
  allowed_event_rule_arns = concat(
    [local.rule_arns["handoff"]],
    var.unmatched_target_arn == null ? [local.rule_arns["unmatched"]] : [],
  )
}

# Dead-letter queue of every EventBridge target; it is itself a DLQ, so it has none.
module "events_dlq" {
  source = "./modules/queue"

  name                      = "${local.name}-events-dlq"
  create_dlq                = false
  message_retention_seconds = 1209600
  allowed_event_rule_arns   = values(local.rule_arns)
}

module "event_routing" {
  source = "./modules/event_routing"

  name                   = local.name
  archive_retention_days = var.event_archive_retention_days
  # The engine's routing and the subscribers' rules (subscribers.tf) on one bus, one retry policy
  # and one dead-letter queue.
  rules                  = merge(local.event_rules, local.subscriber_event_rules)
  dead_letter_arn        = module.events_dlq.arn
  target_max_retries     = var.event_target_max_retries
  target_max_age_seconds = var.event_target_max_age_seconds
}

check "rule_arns" {
  assert {
    condition     = module.event_routing.rule_arns == local.rule_arns
    error_message = "The rule ARNs the queue policies admit differ from the rules' real ARNs."
  }
}

module "shared_layer" {
  source = "./modules/shared_layer"

  name     = local.name
  filename = "${local.build_dir}/layer.zip"
}

module "twilio_webhook" {
  source = "./modules/lambda_function"

  name        = "${local.name}-twilio-webhook"
  description = "Verifies, records and publishes inbound Twilio messages, answering Twilio fast."
  filename    = "${local.build_dir}/twilio_webhook.zip"
  layers      = [module.shared_layer.arn]
  # Twilio gives up after 15 s; a matched message is one Query and one transaction.
  timeout            = 10
  memory_size        = 512
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "twilio-webhook"
    PUBLIC_BASE_URL         = var.public_base_url
    MAX_BODY_BYTES          = tostring(var.max_webhook_body_bytes)
    CONVERSATION_TTL_DAYS   = tostring(var.conversation_ttl_days)
  })

  policy_statements = [
    {
      sid       = "ReadTenants"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.company_data]
    },
    {
      # The newest conversations (a Query on the local index); the conversation's sequence number,
      # or the conversation a first message opens, written in one transaction with the message.
      sid       = "Conversations"
      actions   = ["dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.conversations, module.tables.conversations_index_arns]
    },
    {
      sid       = "RecordMessages"
      actions   = ["dynamodb:PutItem"]
      resources = [module.tables.arns.messages]
    },
    {
      sid       = "ClaimMessageSids"
      actions   = ["dynamodb:PutItem"]
      resources = [module.tables.arns.idempotency]
    },
    {
      # A keyword's consent change (the state and its history item), in the message's transaction.
      sid       = "RecordConsent"
      actions   = ["dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.consent]
    },
    {
      # Only the tenants' Twilio credentials: the auth token verifies the signature.
      sid       = "TwilioSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.twilio_secrets_arn]
    },
  ]
}

module "api" {
  source = "./modules/api"

  name        = local.name
  description = "Twilio webhooks and client routes of the AI Multi-Comms Engine (${terraform.workspace})."
  stage_name  = terraform.workspace

  routes = merge(
    {
      for channel in keys(var.channels) : channel => {
        path          = channel
        function_name = module.twilio_webhook.function_name
        invoke_arn    = module.twilio_webhook.invoke_arn
        throttle      = var.webhook_throttle
      }
    },
    local.status_routes,
    local.client_routes,
    local.conversation_routes,
  )

  api_clients = {
    for client, settings in var.api_keys : client => coalesce(settings.usage_plan, var.api_usage_plan)
  }
  api_key_values = local.api_key_values

  binary_media_types   = var.api_binary_media_types
  tags                 = var.api_tags
  xray_tracing_enabled = var.lambda_tracing_mode == "Active"
  waf                  = var.waf
}

module "monitoring" {
  source = "./modules/monitoring"

  name = local.name
  dlq_names = merge(
    { for channel, queue in module.ai_reply_queue : "${channel}-ai-reply" => queue.dlq_name },
    { for channel, queue in module.outbound_queue : "${channel}-outbound" => queue.dlq_name },
    { for key, queue in module.subscriber_queue : "${key}-subscriber" => queue.dlq_name },
    {
      handoff      = module.handoff_queue.dlq_name
      "events-dlq" = module.events_dlq.name
      "outbox-dlq" = module.outbox_failures.name
    },
  )

  # Nothing in the engine consumes the handoff queue: people (or their tools) do. A conversation
  # waiting there too long means no one is taking them.
  queue_age_alarms = {
    for key, alarm in {
      handoff = {
        queue_name        = module.handoff_queue.name
        threshold_seconds = var.handoff_queue_age_alarm_seconds
        description       = "A conversation handed to people has waited in ${module.handoff_queue.name} for more than ${coalesce(var.handoff_queue_age_alarm_seconds, 0)} s: no one is taking handoffs (README, runbook of this alarm)."
      }
    } : key => alarm if var.handoff_queue_age_alarm_seconds != null
  }
}
