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
  description = "Full URL of every route, by route name."
  value       = { for key, route in var.routes : key => "${aws_api_gateway_stage.this.invoke_url}/${route.path}" }
}

output "usage_plan_ids" {
  description = "Usage plan of each API client, by client."
  value       = { for client, plan in aws_api_gateway_usage_plan.client : client => plan.id }
}

output "api_key_ids" {
  description = "API key ids by client (never the values)."
  value       = { for client, key in aws_api_gateway_api_key.client : client => key.id }
}

output "api_client_key_ids" {
  description = "Client name by API key id: what the functions check a request's key against."
  value       = { for client, key in aws_api_gateway_api_key.client : key.id => client }
}

output "web_acl_arn" {
  description = "The web ACL associated with the stage, or null."
  value       = local.web_acl_arn
}
