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
