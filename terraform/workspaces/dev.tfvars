# Shared development environment in a real AWS account.
aws_region                   = "eu-west-1"
log_retention_days           = 30
event_archive_retention_days = 14
lambda_log_level             = "INFO"

channels = {
  whatsapp = { debounce_seconds = 5, address_prefix = "whatsapp:" }
}
