output "metric_name" {
  description = "Metric counting the CRITICAL post-send lines."
  value       = aws_cloudwatch_log_metric_filter.post_send_failures.metric_transformation[0].name
}

output "pattern" {
  description = "The filter pattern matching the CRITICAL post-send lines."
  value       = aws_cloudwatch_log_metric_filter.post_send_failures.pattern
}

output "alarm_name" {
  description = "Alarm on the metric."
  value       = aws_cloudwatch_metric_alarm.post_send_failures.alarm_name
}
