# The outbox: the messages table's stream hands every new customer message to the relay, which
# publishes its ReplyReceived event. The webhook only writes DynamoDB, so an event bus outage never
# loses a message Twilio was told was accepted.

module "outbox_failures" {
  source = "./modules/queue"

  # Batches the stream mapping gave up on (records older than the stream keeps them, 24 hours):
  # the invocation records name the shard and sequence numbers; the messages stay in the table.
  name                      = "${local.name}-outbox-dlq"
  create_dlq                = false
  message_retention_seconds = 1209600
}

module "outbox_relay" {
  source = "./modules/lambda_function"

  name               = "${local.name}-outbox-relay"
  description        = "Publishes the event of every customer message the webhook recorded, from the messages table's stream."
  filename           = "${local.build_dir}/outbox_relay.zip"
  layers             = [module.shared_layer.arn]
  timeout            = 30
  memory_size        = 256
  tracing_mode       = var.lambda_tracing_mode
  log_retention_days = var.log_retention_days

  environment_variables = merge(local.function_environment, {
    POWERTOOLS_SERVICE_NAME = "outbox-relay"
  })

  stream_event_sources = [
    {
      stream_arn = module.tables.messages_stream_arn
      batch_size = 100
      # Retried until it succeeds: the stream keeps a record for 24 hours, then it is recorded in
      # the failure queue (alarmed like every DLQ).
      maximum_retry_attempts = -1
      on_failure_queue_arn   = module.outbox_failures.arn
      # Only new customer messages the webhook routed and outbox events: replies, templates,
      # statuses and history written without a route (ops migrate: answered in the old layout)
      # never invoke the relay.
      filter_patterns = [
        jsonencode({
          eventName = ["INSERT"]
          dynamodb  = { NewImage = { direction = { S = ["inbound"] }, route = { S = [{ exists = true }] } } }
        }),
        jsonencode({
          eventName = ["INSERT"]
          dynamodb  = { NewImage = { outbox = { BOOL = [true] } } }
        }),
      ]
    },
  ]

  policy_statements = [
    {
      sid       = "PublishReplies"
      actions   = ["events:PutEvents"]
      resources = [module.event_routing.bus_arn]
    },
  ]
}
