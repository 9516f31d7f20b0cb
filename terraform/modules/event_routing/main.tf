# The engine's event bus, an archive of everything on it (replay after a bad deploy), and one rule
# with one target per entry of var.rules. Every target retries with the given policy and then
# dead-letters to one queue, so an undeliverable event is never dropped silently.
#
# A target is an ARN (SQS queue, SNS topic, Lambda function: the module adds the Lambda permission;
# queue and topic policies belong to their owners) or an HTTPS endpoint, reached through an API
# destination with its connection and an invocation role scoped to that one destination.

locals {
  lambda_rules = { for key, rule in var.rules : key => rule if rule.target_type == "lambda" }
  api_rules    = { for key, rule in var.rules : key => rule if rule.target_type == "api_destination" }

  # Each connection credential is one Secrets Manager secret holding a JSON object with one field:
  # {"api_key": ...}, {"password": ...} or {"client_secret": ...}. One per api_destination rule.
  secret_fields = { api_key = "api_key", basic = "password", oauth = "client_secret" }
  connection_secrets = {
    for key, rule in local.api_rules : key => {
      field = local.secret_fields[rule.api_destination.connection.auth]
      secret_id = lookup({
        api_key = rule.api_destination.connection.api_key_secret_id
        basic   = rule.api_destination.connection.password_secret_id
        oauth   = rule.api_destination.connection.client_secret_secret_id
      }, rule.api_destination.connection.auth)
    }
  }
  # Sensitive whatever the provider marks: no output, plan line or error message shows a credential.
  connection_secret_values = {
    for key, secret in data.aws_secretsmanager_secret_version.connection :
    key => sensitive(jsondecode(secret.secret_string)[local.connection_secrets[key].field])
  }

  authorization_types = {
    api_key = "API_KEY"
    basic   = "BASIC"
    oauth   = "OAUTH_CLIENT_CREDENTIALS"
  }

  api_destination_arns = { for key, destination in aws_cloudwatch_event_api_destination.this : key => destination.arn }
  api_invoke_role_arns = { for key, role in aws_iam_role.api_destination : key => role.arn }
}

resource "aws_cloudwatch_event_bus" "this" {
  name = var.name
}

resource "aws_cloudwatch_event_archive" "this" {
  name             = "${var.name}-archive"
  description      = "Every event on ${var.name}, kept for replay."
  event_source_arn = aws_cloudwatch_event_bus.this.arn
  retention_days   = var.archive_retention_days
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = var.rules

  name           = "${var.name}-${each.key}"
  description    = each.value.description
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = each.value.event_pattern
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = var.rules

  rule           = aws_cloudwatch_event_rule.this[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "deliver"
  arn            = lookup(local.api_destination_arns, each.key, each.value.target_arn)
  role_arn       = lookup(local.api_invoke_role_arns, each.key, null)

  dynamic "sqs_target" {
    for_each = each.value.message_group_id == null ? [] : [each.value.message_group_id]

    content {
      message_group_id = sqs_target.value
    }
  }

  retry_policy {
    maximum_event_age_in_seconds = coalesce(each.value.max_age_seconds, var.target_max_age_seconds)
    maximum_retry_attempts       = coalesce(each.value.max_retries, var.target_max_retries)
  }

  dead_letter_config {
    arn = var.dead_letter_arn
  }
}

# A Lambda target's resource policy admits exactly its rule.
resource "aws_lambda_permission" "this" {
  for_each = local.lambda_rules

  statement_id  = "${var.name}-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.target_arn
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.this[each.key].arn
}

# API destinations. The connection's credentials are read at plan time and kept in the state (as
# any resource that takes a credential does); EventBridge stores them again in a secret of its
# own. They never appear in tfvars or git.
data "aws_secretsmanager_secret_version" "connection" {
  for_each = local.connection_secrets

  secret_id = each.value.secret_id
}

resource "aws_cloudwatch_event_connection" "this" {
  for_each = local.api_rules

  name               = "${var.name}-${each.key}"
  description        = "Credentials of ${each.value.api_destination.url} for the rule ${var.name}-${each.key}."
  authorization_type = local.authorization_types[each.value.api_destination.connection.auth]

  auth_parameters {
    dynamic "api_key" {
      for_each = each.value.api_destination.connection.auth == "api_key" ? [each.value.api_destination.connection] : []

      content {
        key   = api_key.value.api_key_name
        value = local.connection_secret_values[each.key]
      }
    }

    dynamic "basic" {
      for_each = each.value.api_destination.connection.auth == "basic" ? [each.value.api_destination.connection] : []

      content {
        username = basic.value.username
        password = local.connection_secret_values[each.key]
      }
    }

    dynamic "oauth" {
      for_each = each.value.api_destination.connection.auth == "oauth" ? [each.value.api_destination.connection] : []

      content {
        authorization_endpoint = oauth.value.authorization_endpoint
        http_method            = oauth.value.oauth_http_method

        client_parameters {
          client_id     = oauth.value.client_id
          client_secret = local.connection_secret_values[each.key]
        }

        # Extra, non-secret body parameters of the token request (grant_type, scope, audience).
        oauth_http_parameters {
          dynamic "body" {
            for_each = oauth.value.oauth_parameters

            content {
              key             = body.key
              value           = body.value
              is_value_secret = false
            }
          }
        }
      }
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "this" {
  for_each = local.api_rules

  name                             = "${var.name}-${each.key}"
  description                      = "Deliveries of the rule ${var.name}-${each.key}."
  connection_arn                   = aws_cloudwatch_event_connection.this[each.key].arn
  invocation_endpoint              = each.value.api_destination.url
  http_method                      = each.value.api_destination.http_method
  invocation_rate_limit_per_second = each.value.api_destination.rate_limit_per_second
}

# EventBridge invokes an API destination with a role: this one may invoke that destination only,
# and only this rule of this account may assume it.
resource "aws_iam_role" "api_destination" {
  for_each = local.api_rules

  name        = "${var.name}-${each.key}"
  description = "EventBridge invokes the API destination ${var.name}-${each.key} with this role."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
        ArnEquals    = { "aws:SourceArn" = aws_cloudwatch_event_rule.this[each.key].arn }
      }
    }]
  })
}

resource "aws_iam_role_policy" "api_destination" {
  for_each = local.api_rules

  name = "invoke-api-destination"
  role = aws_iam_role.api_destination[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "InvokeOwnDestination"
      Effect   = "Allow"
      Action   = "events:InvokeApiDestination"
      Resource = aws_cloudwatch_event_api_destination.this[each.key].arn
    }]
  })
}

data "aws_caller_identity" "current" {}
