variable "name" {
  description = "Function name; also the name of its IAM role and of its log group \"/aws/lambda/<name>\"."
  type        = string
}

variable "description" {
  description = "Function description."
  type        = string
  default     = null
}

variable "filename" {
  description = "Path of the prebuilt deployment zip (handler module at the zip root)."
  type        = string
}

variable "handler" {
  description = "Handler entry point."
  type        = string
  default     = "handler.lambda_handler"
}

variable "runtime" {
  description = "Lambda runtime."
  type        = string
  default     = "python3.12"
}

variable "architectures" {
  description = "Instruction set; must match the wheels bundled in the layers."
  type        = list(string)
  default     = ["x86_64"]
}

variable "layers" {
  description = "Layer version ARNs, in load order."
  type        = list(string)
  default     = []
}

variable "environment_variables" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 10
}

variable "memory_size" {
  description = "Memory in MB (CPU scales with it)."
  type        = number
  default     = 256
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for (and capping) the function; -1 leaves it unreserved."
  type        = number
  default     = -1
}

variable "tracing_mode" {
  description = "X-Ray tracing mode: \"Active\" samples and traces requests, \"PassThrough\" only follows upstream decisions."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be \"Active\" or \"PassThrough\"."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 30
}

variable "policy_statements" {
  description = "IAM statements of the function's inline policy, with exact resource ARNs and optional conditions (e.g. dynamodb:LeadingKeys to confine writes to some partitions)."
  type = list(object({
    sid       = optional(string)
    effect    = optional(string, "Allow")
    actions   = list(string)
    resources = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []
}

variable "sqs_event_sources" {
  description = "SQS queues that trigger the function, with batching; the role may consume exactly these."
  type = list(object({
    queue_arn                          = string
    batch_size                         = optional(number, 10)
    maximum_batching_window_in_seconds = optional(number, 0)
  }))
  default = []
}

variable "stream_event_sources" {
  description = "DynamoDB streams that trigger the function. Records of one shard arrive in order; a failed record (ReportBatchItemFailures) is retried with every later one until it succeeds or is older than maximum_record_age_in_seconds, then its batch is recorded in the on_failure_queue_arn queue. filter_patterns are Lambda event filter patterns (JSON): records matching none never invoke the function."
  type = list(object({
    stream_arn                         = string
    starting_position                  = optional(string, "TRIM_HORIZON")
    batch_size                         = optional(number, 100)
    maximum_batching_window_in_seconds = optional(number, 0)
    maximum_retry_attempts             = optional(number, -1)
    maximum_record_age_in_seconds      = optional(number, -1)
    bisect_batch_on_function_error     = optional(bool, true)
    on_failure_queue_arn               = string
    filter_patterns                    = optional(list(string), [])
  }))
  default = []

  validation {
    condition     = alltrue([for source in var.stream_event_sources : contains(["TRIM_HORIZON", "LATEST"], source.starting_position)])
    error_message = "starting_position must be TRIM_HORIZON or LATEST."
  }
}
