variable "name" {
  description = "Prefix of the topic and key alias names, \"<name_prefix>-<workspace>\"."
  type        = string
}

variable "dlq_names" {
  description = "Dead-letter queue names to alarm on, by a key known at plan time."
  type        = map(string)
}

variable "queue_age_alarms" {
  description = "Queues to alarm on when their oldest message is older than threshold_seconds, by a key known at plan time."
  type = map(object({
    queue_name        = string
    threshold_seconds = number
    description       = optional(string)
  }))
  default = {}

  validation {
    # SQS keeps a message at most 14 days; a threshold beyond that could never be crossed.
    condition     = alltrue([for alarm in values(var.queue_age_alarms) : alarm.threshold_seconds >= 60 && alarm.threshold_seconds < 1209600])
    error_message = "threshold_seconds is at least 60 (SQS reports the age once a minute) and below 1209600 (14 days, SQS's longest retention)."
  }
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
