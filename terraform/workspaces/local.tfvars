# Local cloud: the moto server on loopback (make local, e2e tests). Short retention: nothing here
# outlives the emulator process anyway.
aws_endpoint_url             = "http://127.0.0.1:5000"
log_retention_days           = 1
event_archive_retention_days = 1
lambda_log_level             = "DEBUG"

# A client key for POST /initiate-conversation; API Gateway generates its value (never in git).
api_keys = {
  demo-client = {}
}

# A team's own queue of handoffs (and of what customers write while a person has the
# conversation), created with its dead-letter queue: `aws sqs receive-message --queue-url` the
# subscriber_queue_urls["team"] output. README, "Subscribers", has a helpdesk over HTTPS too.
subscribers = {
  team = {
    detail_types = ["HandoffRequested", "ReplyReceived"]
    routes       = ["handoff"]
    target       = { type = "sqs" }
  }
}
