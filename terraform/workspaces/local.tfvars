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
