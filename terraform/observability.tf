# Operations view: one CloudWatch dashboard for the whole engine and an error-rate alarm per
# function. The DLQ depth alarms and the handoff queue's age alarm live in modules/monitoring (fed
# from main.tf); the check below proves every dead-letter queue the queue modules created has one.

locals {
  observed_functions = {
    twilio_webhook        = module.twilio_webhook.function_name
    reply_processor       = module.reply_processor.function_name
    initiate_conversation = module.initiate_conversation.function_name
    channel_sender        = module.channel_sender.function_name
    outbox_relay          = module.outbox_relay.function_name
    status_callback       = module.status_callback.function_name
    conversations_api     = module.conversations_api.function_name
  }

  observed_queues = merge(
    { for channel, queue in module.ai_reply_queue : "${channel}-ai-reply" => queue.name },
    { for channel, queue in module.outbound_queue : "${channel}-outbound" => queue.name },
    { for key, queue in module.subscriber_queue : "${key}-subscriber" => queue.name },
    { handoff = module.handoff_queue.name },
  )

  # Every dead-letter queue, read from the queue modules themselves rather than from the list given
  # to the monitoring module, so a queue added without an alarm fails the check below.
  all_dlq_names = compact(concat(
    [for queue in module.ai_reply_queue : queue.dlq_name],
    [for queue in module.outbound_queue : queue.dlq_name],
    [for queue in module.subscriber_queue : queue.dlq_name],
    [module.handoff_queue.dlq_name, module.events_dlq.name, module.outbox_failures.name],
  ))

  # Powertools writes the engine's metrics with one dimension, the function's service name.
  app_metrics = {
    "twilio-webhook"        = ["RepliesAccepted", "DuplicatesDropped", "WebhookErrors", "Refused403"]
    "reply-processor"       = ["RepliesSent", "MessagesSent", "Handoffs", "OptOuts", "RepliesSkipped", "RecordsFailed", "PostSendFailures", "HandoffNoticeFailures", "AiUnanswerable", "TenantPauses", "RecordsParked"]
    "initiate-conversation" = ["ConversationsRequested", "RepeatedRequests", "InitiateErrors"]
    "channel-sender"        = ["TemplatesSent", "DuplicateRequestsSkipped", "OutboundFailures", "PostSendUpdateFailures"]
    "outbox-relay"          = ["EventsRelayed", "RelayRetries", "RecordsSkipped"]
    "status-callback"       = ["StatusesRecorded", "StatusDuplicatesDropped", "StatusCallbackErrors", "Refused403"]
    "conversations-api"     = ["AgentMessagesSent", "AgentPartsSent", "PostSendFailures", "ConversationsApiErrors", "DependencyErrors", "Refused403", "Refused409"]
  }

  dashboard_region = data.aws_region.current.name
  # Two engine widgets per row, six units high; the other widgets follow below them.
  dashboard_apps_height = ceil(length(local.app_metrics) / 2) * 6
  dashboard_period      = 300

  dashboard_widgets = concat(
    [
      for index, service in keys(local.app_metrics) : {
        type   = "metric"
        x      = (index % 2) * 12
        y      = floor(index / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = "Engine: ${service}"
          region  = local.dashboard_region
          view    = "timeSeries"
          stacked = false
          period  = local.dashboard_period
          stat    = "Sum"
          metrics = [for metric in local.app_metrics[service] : ["AiComms", metric, "service", service]]
        }
      }
    ],
    [
      {
        type   = "metric"
        x      = 0
        y      = local.dashboard_apps_height
        width  = 12
        height = 6
        properties = {
          title  = "AI latency (reply processor)"
          region = local.dashboard_region
          view   = "timeSeries"
          period = local.dashboard_period
          metrics = [
            ["AiComms", "AiLatency", "service", "reply-processor", { stat = "p50", label = "p50" }],
            ["AiComms", "AiLatency", "service", "reply-processor", { stat = "p90", label = "p90" }],
            ["AiComms", "AiLatency", "service", "reply-processor", { stat = "Maximum", label = "max" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = local.dashboard_apps_height
        width  = 12
        height = 6
        properties = {
          title  = "API ${module.api.stage_name}: 4xx / 5xx"
          region = local.dashboard_region
          view   = "timeSeries"
          period = local.dashboard_period
          stat   = "Sum"
          metrics = [
            ["AWS/ApiGateway", "4XXError", "ApiName", local.name, "Stage", module.api.stage_name],
            ["AWS/ApiGateway", "5XXError", "ApiName", local.name, "Stage", module.api.stage_name],
            ["AWS/ApiGateway", "Count", "ApiName", local.name, "Stage", module.api.stage_name, { yAxis = "right" }],
          ]
        }
      },
    ],
    [
      for index, metric in ["Errors", "Throttles", "Duration", "ConcurrentExecutions"] : {
        type   = "metric"
        x      = (index % 2) * 12
        y      = local.dashboard_apps_height + 6 + floor(index / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = "Lambda ${metric}"
          region  = local.dashboard_region
          view    = "timeSeries"
          period  = local.dashboard_period
          stat    = metric == "Duration" ? "p90" : (metric == "ConcurrentExecutions" ? "Maximum" : "Sum")
          metrics = [for short, name in local.observed_functions : ["AWS/Lambda", metric, "FunctionName", name, { label = short }]]
        }
      }
    ],
    [
      {
        type   = "metric"
        x      = 0
        y      = local.dashboard_apps_height + 18
        width  = 12
        height = 6
        properties = {
          title   = "Queue depth (visible messages)"
          region  = local.dashboard_region
          view    = "timeSeries"
          period  = 60
          stat    = "Maximum"
          metrics = [for key, name in local.observed_queues : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, { label = key }]]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = local.dashboard_apps_height + 18
        width  = 12
        height = 6
        properties = {
          title   = "Dead-letter queue depth (any message is an incident)"
          region  = local.dashboard_region
          view    = "timeSeries"
          period  = 60
          stat    = "Maximum"
          metrics = [for name in local.all_dlq_names : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name]]
        }
      },
    ],
  )
}

resource "aws_cloudwatch_dashboard" "engine" {
  dashboard_name = local.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}

# Errors over invocations rather than a count of errors: a quiet hour with one failure and a busy
# hour with a hundred both read right. No invocations means no data, which is not a breach.
resource "aws_cloudwatch_metric_alarm" "function_error_rate" {
  for_each = local.observed_functions

  alarm_name          = "${each.value}-error-rate"
  alarm_description   = "More than ${var.error_rate_alarm_threshold_percent}% of ${each.value}'s invocations failed; see its log group and the dashboard ${local.name}."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = var.error_rate_alarm_evaluation_periods
  threshold           = var.error_rate_alarm_threshold_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = [module.monitoring.alerts_topic_arn]
  ok_actions          = [module.monitoring.alerts_topic_arn]

  metric_query {
    id          = "rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = each.value }
      stat        = "Sum"
      period      = var.error_rate_alarm_period_seconds
    }
  }

  metric_query {
    id = "invocations"

    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = each.value }
      stat        = "Sum"
      period      = var.error_rate_alarm_period_seconds
    }
  }
}

check "every_dlq_has_an_alarm" {
  assert {
    condition     = length(setsubtract(toset([for name in local.all_dlq_names : "${name}-not-empty"]), toset(values(module.monitoring.alarm_names)))) == 0
    error_message = "A dead-letter queue has no depth alarm: add it to module.monitoring's dlq_names."
  }
}


# A tenant-wide failure (credentials or quota refused) pauses that tenant's processing instead of
# failing its conversations; someone must fix the tenant's account, so every pause is alarmed. The
# pause lifts by itself with the first success after it (the OK action says so).
resource "aws_cloudwatch_metric_alarm" "tenant_paused" {
  for_each = { "reply-processor" = module.reply_processor.function_name, "channel-sender" = module.channel_sender.function_name }

  alarm_name          = "${each.value}-tenant-paused"
  alarm_description   = "${each.value} paused a tenant: its OpenAI key, its quota or its Twilio credentials were refused (see the \"tenant paused\" log lines for which). Work waits and resumes by itself once they work again."
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 1
  threshold           = 0
  treat_missing_data  = "notBreaching"
  namespace           = local.function_environment.POWERTOOLS_METRICS_NAMESPACE
  metric_name         = "TenantPauses"
  dimensions          = { service = each.key }
  statistic           = "Sum"
  period              = 300
  alarm_actions       = [module.monitoring.alerts_topic_arn]
  ok_actions          = [module.monitoring.alerts_topic_arn]
}
