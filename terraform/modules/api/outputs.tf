output "id" {
  description = "REST API id."
  value       = aws_api_gateway_rest_api.this.id
}

output "execution_arn" {
  description = "Execution ARN, the prefix of invoke permissions."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "stage_name" {
  description = "Stage name."
  value       = aws_api_gateway_stage.this.stage_name
}

output "invoke_url" {
  description = "Base URL of the stage."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "route_urls" {
  description = "Full URL of every route, by path part."
  value       = { for path in keys(var.routes) : path => "${aws_api_gateway_stage.this.invoke_url}/${path}" }
}

output "usage_plan_id" {
  description = "Usage plan of the client API keys (null without one)."
  value       = one(aws_api_gateway_usage_plan.clients[*].id)
}

output "api_key_ids" {
  description = "API key ids by client (never the values)."
  value       = { for client, key in aws_api_gateway_api_key.client : client => key.id }
}
