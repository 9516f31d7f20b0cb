variable "log_group_name" {
  description = "Log group of the function whose CRITICAL post-send lines are counted."
  type        = string
}

variable "metric_name" {
  description = "Name of the metric filter and of the metric it writes (unique per function)."
  type        = string
}

variable "metric_namespace" {
  description = "CloudWatch namespace of the metric."
  type        = string
  default     = "AiComms"
}

variable "alarm_name_prefix" {
  description = "Alarm name prefix, usually the function name: \"<prefix>-post-send-update-failed\"."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic the alarm notifies (the alerts topic)."
  type        = string
}

variable "period_seconds" {
  description = "Period over which the failures are summed."
  type        = number
  default     = 60
}
