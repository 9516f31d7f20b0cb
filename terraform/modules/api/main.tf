# REST API (v1, regional): each route a Lambda proxy integration on a path of up to three parts
# ("whatsapp", "whatsapp/status", "conversations/{conversation_id}/messages"). REST rather than
# HTTP API because the client routes need API keys with usage plans.

locals {
  # Every path the routes need, with every prefix of it, by depth (API Gateway builds the tree
  # one resource per part; Terraform cannot make a resource depend on itself, hence one block a level).
  paths  = toset(flatten([for route in var.routes : [for n in range(1, length(split("/", route.path)) + 1) : join("/", slice(split("/", route.path), 0, n))]]))
  level1 = { for path in local.paths : path => path if length(split("/", path)) == 1 }
  level2 = { for path in local.paths : path => path if length(split("/", path)) == 2 }
  level3 = { for path in local.paths : path => path if length(split("/", path)) == 3 }
  resource_ids = merge(
    { for path, resource in aws_api_gateway_resource.level1 : path => resource.id },
    { for path, resource in aws_api_gateway_resource.level2 : path => resource.id },
    { for path, resource in aws_api_gateway_resource.level3 : path => resource.id },
  )
  # One Lambda permission per function, for every method and path it serves on this API.
  functions = { for route in var.routes : route.function_name => route.function_name... }
}

resource "aws_api_gateway_rest_api" "this" {
  name               = var.name
  description        = var.description
  binary_media_types = var.binary_media_types
  tags               = var.tags

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "level1" {
  for_each = local.level1

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.value
}

resource "aws_api_gateway_resource" "level2" {
  for_each = local.level2

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level1[split("/", each.value)[0]].id
  path_part   = split("/", each.value)[1]
}

resource "aws_api_gateway_resource" "level3" {
  for_each = local.level3

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level2[join("/", slice(split("/", each.value), 0, 2))].id
  path_part   = split("/", each.value)[2]
}

resource "aws_api_gateway_method" "route" {
  #checkov:skip=CKV_AWS_59:Twilio webhook routes cannot carry AWS credentials; the handler verifies X-Twilio-Signature. Client routes set api_key_required.
  #checkov:skip=CKV2_AWS_53:The Lambda proxy handler validates and size-limits the body itself; a request validator would duplicate it.
  for_each = var.routes

  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = local.resource_ids[each.value.path]
  http_method      = each.value.method
  authorization    = "NONE"
  api_key_required = each.value.api_key_required
}

resource "aws_api_gateway_integration" "route" {
  for_each = var.routes

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = local.resource_ids[each.value.path]
  http_method             = aws_api_gateway_method.route[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = each.value.invoke_arn
}

# Only this API, and only the route's own method and path, may invoke the function. API Gateway
# names the request's path in the source ARN, so a path parameter ("{conversation_id}") is a "*".
resource "aws_lambda_permission" "route" {
  for_each = var.routes

  statement_id  = "AllowApiGateway-${var.name}-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/${each.value.method}/${replace(each.value.path, "/\\{[^}/]+\\}/", "*")}"
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
      resources          = local.resource_ids
      methods            = { for key, method in aws_api_gateway_method.route : key => method.id }
      integrations       = { for key, integration in aws_api_gateway_integration.route : key => integration.id }
    }))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_76:Access logging needs the account-wide API Gateway CloudWatch role, an account singleton this stack must not own; the functions log every request.
  #checkov:skip=CKV_AWS_120:Caching is wrong for webhooks and command routes: every POST must reach the function.
  #checkov:skip=CKV2_AWS_51:Client certificates are for backends behind HTTP integrations; these routes are Lambda proxies.
  #checkov:skip=CKV2_AWS_4:Execution logging needs the account-wide API Gateway CloudWatch role; its level is a variable of the method settings, OFF by default.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = var.xray_tracing_enabled
}

# The stage's defaults, then each route's own throttle (the webhooks' apart from the client routes).
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

resource "aws_api_gateway_method_settings" "route" {
  #checkov:skip=CKV_AWS_225:Caching is wrong for webhooks and command routes: every POST must reach the function.
  for_each = { for key, route in var.routes : key => route if route.throttle != null }

  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "${each.value.path}/${each.value.method}"

  settings {
    metrics_enabled        = true
    logging_level          = var.logging_level
    throttling_burst_limit = each.value.throttle.burst_limit
    throttling_rate_limit  = each.value.throttle.rate_limit
  }
}
