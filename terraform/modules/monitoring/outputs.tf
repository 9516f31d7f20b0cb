output "alerts_topic_arn" {
  description = "SNS topic the alarms notify; subscribe people or tools to it."
  value       = aws_sns_topic.alerts.arn
}

output "alerts_kms_key_arn" {
  description = "KMS key encrypting the alerts topic."
  value       = aws_kms_key.alerts.arn
}

output "alarm_names" {
  description = "DLQ alarm names by the keys of var.dlq_names."
  value       = { for key, alarm in aws_cloudwatch_metric_alarm.dlq_not_empty : key => alarm.alarm_name }
}

output "queue_age_alarm_names" {
  description = "Oldest-message-age alarm names by the keys of var.queue_age_alarms."
  value       = { for key, alarm in aws_cloudwatch_metric_alarm.oldest_message_age : key => alarm.alarm_name }
}
