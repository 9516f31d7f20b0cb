output "bus_name" {
  description = "Event bus name."
  value       = aws_cloudwatch_event_bus.this.name
}

output "bus_arn" {
  description = "Event bus ARN."
  value       = aws_cloudwatch_event_bus.this.arn
}

output "archive_arn" {
  description = "Event archive ARN."
  value       = aws_cloudwatch_event_archive.this.arn
}

output "rule_names" {
  description = "Rule names by rule key."
  value       = { for key, rule in aws_cloudwatch_event_rule.this : key => rule.name }
}

output "rule_arns" {
  description = "Rule ARNs by rule key."
  value       = { for key, rule in aws_cloudwatch_event_rule.this : key => rule.arn }
}

output "event_patterns" {
  description = "Event pattern JSON by rule name."
  value       = { for key, rule in aws_cloudwatch_event_rule.this : rule.name => var.rules[key].event_pattern }
}

output "target_arns" {
  description = "The ARN each rule delivers to (an API destination's ARN for api_destination rules), by rule key."
  value       = { for key, target in aws_cloudwatch_event_target.this : key => target.arn }
}

output "api_destination_arns" {
  description = "API destination ARNs by rule key (api_destination rules only)."
  value       = local.api_destination_arns
}

output "connection_arns" {
  description = "EventBridge connection ARNs by rule key (api_destination rules only)."
  value       = { for key, connection in aws_cloudwatch_event_connection.this : key => connection.arn }
}

output "api_destination_role_arns" {
  description = "Role EventBridge invokes each API destination with, by rule key."
  value       = local.api_invoke_role_arns
}
