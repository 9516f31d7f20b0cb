# Counts the CRITICAL "message sent but its record was not updated" lines of one function's log
# group and alarms on the first one: such a failure is never retried (a retry would send the
# message twice), so a person has to reconcile the conversation record.

locals {
  # Keep in step with ai_comms.critical (level and event name); a unit test checks the two agree.
  pattern = "{ $.level = \"CRITICAL\" && $.critical_event = \"post_send_update_failed\" }"
}

resource "aws_cloudwatch_log_metric_filter" "post_send_failures" {
  name           = var.metric_name
  log_group_name = var.log_group_name
  pattern        = local.pattern

  metric_transformation {
    name          = var.metric_name
    namespace     = var.metric_namespace
    value         = "1"
    default_value = "0"
    unit          = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "post_send_failures" {
  alarm_name          = "${var.alarm_name_prefix}-post-send-update-failed"
  alarm_description   = "A message was sent but its record was not updated (${var.log_group_name}); the work was not retried. Reconcile the conversation record."
  namespace           = var.metric_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.post_send_failures.metric_transformation[0].name
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
