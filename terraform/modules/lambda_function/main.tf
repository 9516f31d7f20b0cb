# One Lambda function with everything it owns: its IAM role (only the given statements, plus its
# own log group), its log group with retention, and optionally SQS event source mappings that
# report partial batch failures. Code comes as a prebuilt zip (no archive provider needed).

locals {
  consumes_queues  = length(var.sqs_event_sources) > 0
  consumes_streams = length(var.stream_event_sources) > 0
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  description        = "Execution role of the ${var.name} Lambda function."
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Created here rather than by Lambda on first invocation, so retention applies and the role
# needs no logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Log data is encrypted by CloudWatch Logs by default; a customer-managed KMS key is an optional hardening for users.
  #checkov:skip=CKV_AWS_338:Retention is set per environment through a variable (prod keeps logs longest); one year everywhere is not required.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = local.consumes_queues ? [1] : []

    content {
      sid = "ConsumeQueues"
      actions = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
      ]
      resources = [for source in var.sqs_event_sources : source.queue_arn]
    }
  }

  dynamic "statement" {
    for_each = local.consumes_streams ? [1] : []

    content {
      sid       = "ConsumeStreams"
      actions   = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
      resources = [for source in var.stream_event_sources : source.stream_arn]
    }
  }

  # The event source mapping writes the batches it gives up on to their failure queue itself, with
  # the function's role.
  dynamic "statement" {
    for_each = local.consumes_streams ? [1] : []

    content {
      sid       = "RecordStreamFailures"
      actions   = ["sqs:SendMessage"]
      resources = distinct([for source in var.stream_event_sources : source.on_failure_queue_arn])
    }
  }

  # X-Ray's write API has no resource-level permissions, hence "*". An inline statement rather
  # than the AWS-managed AWSXRayDaemonWriteAccess policy, which emulators do not all ship.
  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []

    content {
      sid       = "WriteTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.policy_statements

    content {
      sid       = statement.value.sid
      effect    = statement.value.effect
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.conditions

        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = var.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway or through SQS event source mappings, where the queue's own DLQ catches failures; a Lambda DLQ only applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:Talks only to public AWS endpoints, Twilio and OpenAI; a VPC would add NAT cost and cold-start latency without protecting anything.
  #checkov:skip=CKV_AWS_173:Environment variables hold names and URLs only; secrets stay in Secrets Manager and are read at runtime.
  #checkov:skip=CKV_AWS_272:Code signing is optional for users; the deployed zip is pinned by source_code_hash.
  function_name    = var.name
  description      = var.description
  role             = aws_iam_role.this.arn
  filename         = var.filename
  source_code_hash = filebase64sha256(var.filename)
  handler          = var.handler
  runtime          = var.runtime
  architectures    = var.architectures
  layers           = var.layers
  timeout          = var.timeout
  memory_size      = var.memory_size

  reserved_concurrent_executions = var.reserved_concurrent_executions

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [1] : []

    content {
      variables = var.environment_variables
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.this,
  ]
}

resource "aws_lambda_event_source_mapping" "sqs" {
  count = length(var.sqs_event_sources)

  function_name                      = aws_lambda_function.this.function_name
  event_source_arn                   = var.sqs_event_sources[count.index].queue_arn
  batch_size                         = var.sqs_event_sources[count.index].batch_size
  maximum_batching_window_in_seconds = var.sqs_event_sources[count.index].maximum_batching_window_in_seconds

  # Only the failed messages of a batch return to the queue; the rest are deleted.
  function_response_types = ["ReportBatchItemFailures"]
}

resource "aws_lambda_event_source_mapping" "stream" {
  count = length(var.stream_event_sources)

  function_name                      = aws_lambda_function.this.function_name
  event_source_arn                   = var.stream_event_sources[count.index].stream_arn
  starting_position                  = var.stream_event_sources[count.index].starting_position
  batch_size                         = var.stream_event_sources[count.index].batch_size
  maximum_batching_window_in_seconds = var.stream_event_sources[count.index].maximum_batching_window_in_seconds
  maximum_retry_attempts             = var.stream_event_sources[count.index].maximum_retry_attempts
  maximum_record_age_in_seconds      = var.stream_event_sources[count.index].maximum_record_age_in_seconds
  bisect_batch_on_function_error     = var.stream_event_sources[count.index].bisect_batch_on_function_error

  # Only the failed record and those after it are retried (the function reports the first failure).
  function_response_types = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = var.stream_event_sources[count.index].on_failure_queue_arn
    }
  }

  dynamic "filter_criteria" {
    for_each = length(var.stream_event_sources[count.index].filter_patterns) > 0 ? [1] : []

    content {
      dynamic "filter" {
        for_each = var.stream_event_sources[count.index].filter_patterns

        content {
          pattern = filter.value
        }
      }
    }
  }
}
