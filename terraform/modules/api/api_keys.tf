# Client access for routes with api_key_required: one usage plan per client on the stage (its own
# throttle and quota) holding that client's API key. API Gateway checks the x-api-key header before
# any function runs and passes the key's id to the function, which checks the client may act for
# the tenant it names.

resource "aws_api_gateway_usage_plan" "client" {
  for_each = var.api_clients

  name        = "${var.name}-${each.key}"
  description = "Throttle and quota of API client ${each.key} on ${var.name}."

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    rate_limit  = each.value.rate_limit
    burst_limit = each.value.burst_limit
  }

  quota_settings {
    limit  = each.value.quota_limit
    period = each.value.quota_period
  }
}

resource "aws_api_gateway_api_key" "client" {
  for_each = var.api_clients

  name        = "${var.name}-${each.key}"
  description = "API key of client ${each.key}."
  enabled     = true
  # null lets API Gateway generate the value.
  value = lookup(var.api_key_values, each.key, null)
}

resource "aws_api_gateway_usage_plan_key" "client" {
  for_each = var.api_clients

  key_id        = aws_api_gateway_api_key.client[each.key].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.client[each.key].id
}
