# REST API (v1, regional) with one top-level resource per route, each a Lambda proxy integration.
# REST rather than HTTP API because later routes need API keys with usage plans.

resource "aws_api_gateway_rest_api" "this" {
  name               = var.name
  description        = var.description
  binary_media_types = var.binary_media_types

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "route" {
  for_each = var.routes

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_method" "route" {
  #checkov:skip=CKV_AWS_59:Twilio webhook routes cannot carry AWS credentials; the handler verifies X-Twilio-Signature. Client routes set api_key_required.
  #checkov:skip=CKV2_AWS_53:The Lambda proxy handler validates and size-limits the body itself; a request validator would duplicate it.
  for_each = var.routes

  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.route[each.key].id
  http_method      = each.value.method
  authorization    = "NONE"
  api_key_required = each.value.api_key_required
}

resource "aws_api_gateway_integration" "route" {
  for_each = var.routes

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.route[each.key].id
  http_method             = aws_api_gateway_method.route[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = each.value.invoke_arn
}

# Only this API, and only the route's own method and path, may invoke the function.
resource "aws_lambda_permission" "route" {
  for_each = var.routes

  statement_id  = "AllowApiGateway-${var.name}-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/${each.value.method}/${each.key}"
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # A deployment is a snapshot: take a new one whenever a route, its integration or the API's
  # settings change. Hash ids and inputs only: whole resources carry server-filled attributes
  # that would force a new deployment on every plan.
  triggers = {
    redeployment = sha1(jsonencode({
      routes             = var.routes
      binary_media_types = var.binary_media_types
      resources          = { for path, resource in aws_api_gateway_resource.route : path => resource.id }
      methods            = { for path, method in aws_api_gateway_method.route : path => method.id }
      integrations       = { for path, integration in aws_api_gateway_integration.route : path => integration.id }
    }))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_76:Access logging needs the account-wide API Gateway CloudWatch role, an account singleton this stack must not own; the functions log every request.
  #checkov:skip=CKV_AWS_120:Caching is wrong for webhooks and command routes: every POST must reach the function.
  #checkov:skip=CKV2_AWS_29:WAF is optional for users; routes are throttled and Twilio requests are signature-checked.
  #checkov:skip=CKV2_AWS_51:Client certificates are for backends behind HTTP integrations; these routes are Lambda proxies.
  #checkov:skip=CKV2_AWS_4:Execution logging needs the account-wide API Gateway CloudWatch role; its level is a variable of the method settings, OFF by default.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = var.xray_tracing_enabled
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Caching is wrong for webhooks and command routes: every POST must reach the function.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = var.logging_level
    throttling_burst_limit = var.throttling_burst_limit
    throttling_rate_limit  = var.throttling_rate_limit
  }
}
