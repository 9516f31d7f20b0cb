variable "name" {
  description = "Event bus name; rules are named \"<name>-<rule key>\"."
  type        = string
}

variable "archive_retention_days" {
  description = "Days the archive keeps events (0 keeps them forever)."
  type        = number
  default     = 30
}

variable "rules" {
  description = "Rules by key: event pattern (JSON string) and the ARN of the single target it delivers to."
  type = map(object({
    description   = optional(string)
    event_pattern = string
    target_arn    = string
  }))
}

variable "dead_letter_arn" {
  description = "SQS queue ARN that receives events a target could not take after all retries."
  type        = string
}

variable "target_max_retries" {
  description = "Delivery attempts per event and target before dead-lettering."
  type        = number
  default     = 10
}

variable "target_max_age_seconds" {
  description = "Maximum age of an event still being retried before dead-lettering."
  type        = number
  default     = 3600

  validation {
    condition     = var.target_max_age_seconds >= 60 && var.target_max_age_seconds <= 86400
    error_message = "EventBridge accepts a maximum event age of 60 to 86400 seconds."
  }
}
