# Client access for routes with api_key_required: one usage plan on the stage (throttle + quota)
# and one API key per client in it. API Gateway checks the x-api-key header before any function runs.

resource "aws_api_gateway_usage_plan" "clients" {
  count = var.usage_plan == null ? 0 : 1

  name        = "${var.name}-clients"
  description = "Throttle and quota of every client API key of ${var.name}."

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    rate_limit  = var.usage_plan.rate_limit
    burst_limit = var.usage_plan.burst_limit
  }

  quota_settings {
    limit  = var.usage_plan.quota_limit
    period = var.usage_plan.quota_period
  }
}

resource "aws_api_gateway_api_key" "client" {
  for_each = var.api_key_clients

  name        = "${var.name}-${each.key}"
  description = "API key of client ${each.key}."
  enabled     = true
  # null lets API Gateway generate the value.
  value = lookup(var.api_key_values, each.key, null)
}

resource "aws_api_gateway_usage_plan_key" "client" {
  for_each = var.usage_plan == null ? toset([]) : var.api_key_clients

  key_id        = aws_api_gateway_api_key.client[each.key].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.clients[0].id
}
