variable "name" {
  description = "Queue name; the dead-letter queue is \"<name>-dlq\"."
  type        = string
}

variable "create_dlq" {
  description = "Create a dead-letter queue and redrive to it (false for a queue that is itself a DLQ)."
  type        = bool
  default     = true
}

variable "max_receive_count" {
  description = "Receives before a message moves to the dead-letter queue."
  type        = number
  default     = 3
}

variable "delay_seconds" {
  description = "Delivery delay of every message (the debounce window of a channel's AI reply)."
  type        = number
  default     = 0

  validation {
    condition     = var.delay_seconds >= 0 && var.delay_seconds <= 900
    error_message = "SQS allows a delay of 0 to 900 seconds."
  }
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout; keep it at least six times the consuming Lambda's timeout."
  type        = number
  default     = 180
}

variable "message_retention_seconds" {
  description = "How long the queue keeps an unconsumed message."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "How long the dead-letter queue keeps a message (the maximum gives operators time to redrive)."
  type        = number
  default     = 1209600
}

variable "allowed_event_rule_arns" {
  description = "EventBridge rule ARNs allowed to send to the queue; no queue policy when empty."
  type        = list(string)
  default     = []
}
