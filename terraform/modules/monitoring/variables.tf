variable "name" {
  description = "Prefix of the topic and key alias names, \"<name_prefix>-<workspace>\"."
  type        = string
}

variable "dlq_names" {
  description = "Dead-letter queue names to alarm on, by a key known at plan time."
  type        = map(string)
}

variable "alarm_period_seconds" {
  description = "Period over which a DLQ's visible message count is evaluated."
  type        = number
  default     = 300
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the alerts key is deleted after a destroy."
  type        = number
  default     = 7
}
