variable "name" {
  description = "REST API name."
  type        = string
}

variable "description" {
  description = "REST API description."
  type        = string
  default     = null
}

variable "stage_name" {
  description = "The single stage the API is deployed to."
  type        = string
}

variable "routes" {
  description = "Top-level routes by path part (\"whatsapp\" serves /whatsapp), each proxied to one Lambda function."
  type = map(object({
    method           = optional(string, "POST")
    function_name    = string
    invoke_arn       = string
    api_key_required = optional(bool, false)
  }))
}

variable "binary_media_types" {
  description = "Content types API Gateway passes to the functions base64-encoded."
  type        = list(string)
  default     = []
}

variable "xray_tracing_enabled" {
  description = "Trace requests through the stage with X-Ray."
  type        = bool
  default     = false
}

variable "logging_level" {
  description = "Execution logging level of every method: OFF, ERROR or INFO (ERROR/INFO need the account's API Gateway CloudWatch role)."
  type        = string
  default     = "OFF"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.logging_level)
    error_message = "logging_level must be OFF, ERROR or INFO."
  }
}

variable "throttling_burst_limit" {
  description = "Burst limit of every method, keeping a flood from exhausting Lambda concurrency."
  type        = number
  default     = 100
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second of every method."
  type        = number
  default     = 50
}
