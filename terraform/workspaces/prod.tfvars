# Production: longer log and event retention for investigations and replays, full tracing, and
# tables that refuse deletion.
aws_region                   = "eu-west-1"
log_retention_days           = 365
event_archive_retention_days = 90
lambda_log_level             = "INFO"
lambda_tracing_mode          = "Active"
table_deletion_protection    = true

channels = {
  whatsapp = { debounce_seconds = 5, address_prefix = "whatsapp:" }
}
