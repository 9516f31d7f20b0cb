# AI replies: the reply processor on every channel's AI-reply queue, the handoff notice topic, and
# the alarm on replies sent but not recorded.

locals {
  # The ai-reply queues' visibility must outlast one invocation, or a batch still being answered
  # reappears for a second consumer. (The processor reschedules failed records itself.)
  reply_processor_visibility_ok = local.ai_reply_visibility_timeout_seconds >= var.reply_processor_timeout_seconds
}

check "reply_queue_visibility" {
  assert {
    condition     = local.reply_processor_visibility_ok
    error_message = "The ai-reply queues' visibility timeout is shorter than the reply processor's timeout."
  }
}

# One AI turn with every retry must end within one invocation, with 10 s left for the Twilio sends:
# each request up to openai_timeout_seconds, backoffs of 0.5 s, 1 s, ... between failed ones, and
# up to three 3-second waits on a conversation another request holds (openai_client.LOCKED_WAITS).
# A turn cut off by the timeout would leave its record to the queue's retries instead.
check "reply_processor_covers_ai_retries" {
  assert {
    condition     = var.openai_timeout_seconds * (var.openai_max_retries + 1) + 0.5 * (pow(2, var.openai_max_retries) - 1) + 9 + 10 <= var.reply_processor_timeout_seconds
    error_message = "openai_timeout_seconds x (openai_max_retries + 1), the waits between retries and 10 s of sends exceed reply_processor_timeout_seconds."
  }
}

module "reply_processor" {
  source = "./modules/lambda_function"

  name        = "${local.name}-reply-processor"
  description = "Answers each burst of customer messages once: lease, one AI call, Twilio reply, history."
  filename    = "${local.build_dir}/reply_processor.zip"
  layers      = [module.shared_layer.arn]
  # One record's worst case is the AI call with its SDK retries plus the Twilio sends.
  timeout            = var.reply_processor_timeout_seconds
  memory_size        = 512
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME    = "reply-processor"
    OPENAI_BASE_URL            = var.openai_base_url
    TWILIO_API_BASE_URL        = var.twilio_api_base_url
    OPENAI_TIMEOUT_SECONDS     = tostring(var.openai_timeout_seconds)
    OPENAI_MAX_RETRIES         = tostring(var.openai_max_retries)
    RETRY_BASE_SECONDS         = tostring(var.reply_retry_base_seconds)
    TENANT_PAUSE_SECONDS       = tostring(var.tenant_pause_seconds)
    HEARTBEAT_INTERVAL_SECONDS = "10"
    VISIBILITY_EXTEND_SECONDS  = tostring(local.ai_reply_visibility_timeout_seconds)
    HANDOFF_TOPIC_ARN          = aws_sns_topic.handoff_notices.arn
    CONVERSATION_TTL_DAYS      = tostring(var.conversation_ttl_days)
    # Every part's StatusCallback: POST <public base>/<channel>/status.
    PUBLIC_BASE_URL = local.public_base_url
  })

  sqs_event_sources = [
    for channel in keys(var.channels) : {
      queue_arn  = module.ai_reply_queue[channel].arn
      batch_size = var.reply_batch_size
    }
  ]

  policy_statements = [
    {
      sid       = "Conversations"
      actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
      resources = [module.tables.arns.conversations]
    },
    {
      # The burst after answered_seq (one key range) and the reply's parts, written in the final
      # transaction with the conversation (with a hand-over's event as an outbox item).
      sid       = "Messages"
      actions   = ["dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.messages]
    },
    {
      # The tenant's pause (a tenant-wide failure): only the "pause#<company>" partitions, never a
      # tenant's configuration.
      sid       = "TenantPauses"
      actions   = ["dynamodb:UpdateItem", "dynamodb:DeleteItem"]
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
      resources = [for queue in module.ai_reply_queue : queue.arn]
    },
    {
      sid       = "TenantConfig"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.company_data]
    },
    {
      sid       = "PublishHandoffs"
      actions   = ["events:PutEvents"]
      resources = [module.event_routing.bus_arn]
    },
    {
      # Consent, read right before every send.
      sid       = "ReadConsent"
      actions   = ["dynamodb:GetItem"]
      resources = [module.tables.arns.consent]
    },
    {
      # A recipient Twilio reports as blocked (21610) is recorded as opted out, with its history item.
      sid       = "RecordBlocked"
      actions   = ["dynamodb:UpdateItem", "dynamodb:PutItem"]
      resources = [module.tables.arns.consent]
    },
    {
      sid       = "TenantSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.twilio_secrets_arn, local.openai_secrets_arn]
    },
    {
      sid       = "HandoffNotices"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.handoff_notices.arn]
    },
    {
      # The heartbeat and the per-record backoff address a record's queue by URL.
      sid       = "ReplyQueueUrls"
      actions   = ["sqs:GetQueueUrl"]
      resources = [for queue in module.ai_reply_queue : queue.arn]
    },
  ]
}

# Handoff notices: people subscribe (email, chat webhook) to hear that a conversation needs them.
# The reply processor publishes here itself, next to HandoffRequested on the bus: an EventBridge
# target would need a customer-managed key (EventBridge cannot use aws/sns), and the emulator the
# local cloud runs on cannot deliver events to SNS at all. Notices name the conversation only;
# numbers and message text stay in the engine.
resource "aws_sns_topic" "handoff_notices" {
  name              = "${local.name}-handoff-notices"
  kms_master_key_id = "alias/aws/sns"
}

module "reply_processor_post_send_alarm" {
  source = "./modules/critical_log_alarm"

  log_group_name    = module.reply_processor.log_group_name
  metric_name       = "ReplyProcessorPostSendUpdateFailures"
  alarm_name_prefix = module.reply_processor.function_name
  alarm_topic_arn   = module.monitoring.alerts_topic_arn
}

