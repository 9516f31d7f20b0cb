# One SQS queue, by default with its own dead-letter queue, plus the queue policy that lets only
# the given EventBridge rules send to it. Both queues use SQS-managed encryption (SSE-SQS), which
# EventBridge can write to without any KMS key policy.

locals {
  create_policy = length(var.allowed_event_rule_arns) > 0
}

resource "aws_sqs_queue" "dlq" {
  count = var.create_dlq ? 1 : 0

  name                      = "${var.name}-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "this" {
  name                       = var.name
  delay_seconds              = var.delay_seconds
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  sqs_managed_sse_enabled    = true
}

# A resource of its own rather than the queue's redrive_policy argument: the queue and its DLQ
# are created in parallel (each waits about 25 s for SQS attribute propagation), and a change of
# the redrive policy never rewrites the queue's other attributes.
resource "aws_sqs_queue_redrive_policy" "this" {
  count = var.create_dlq ? 1 : 0

  queue_url = aws_sqs_queue.this.id
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq[0].arn
    maxReceiveCount     = var.max_receive_count
  })
}

resource "aws_sqs_queue_policy" "this" {
  count = local.create_policy ? 1 : 0

  queue_url = aws_sqs_queue.this.id

  # Plain jsonencode rather than a policy document data source: the data source would be re-read
  # (and the policy shown as changing) whenever the queue has any pending change.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowEventBridgeRules"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.this.arn
      # Only the named rules, not any rule in any account that knows the queue ARN.
      Condition = { ArnEquals = { "aws:SourceArn" = var.allowed_event_rule_arns } }
    }]
  })

  # Set after the redrive policy, never concurrently: some emulators (moto) drop a queue's policy
  # on any SetQueueAttributes call that does not repeat it.
  depends_on = [aws_sqs_queue_redrive_policy.this]
}
