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

variable "usage_plan" {
  description = "Limits of the usage plan client API keys belong to: steady requests per second, burst, and a quota of requests per period (DAY, WEEK or MONTH). null creates no plan, so no key is admitted anywhere."
  type = object({
    rate_limit   = number
    burst_limit  = number
    quota_limit  = number
    quota_period = string
  })
  default = null

  validation {
    condition     = var.usage_plan == null || contains(["DAY", "WEEK", "MONTH"], try(var.usage_plan.quota_period, ""))
    error_message = "usage_plan.quota_period must be DAY, WEEK or MONTH."
  }
}

variable "api_key_clients" {
  description = "Clients that get an API key in the usage plan, by name."
  type        = set(string)
  default     = []
}

variable "api_key_values" {
  description = "Key values by client, for clients whose key is managed outside (Secrets Manager); the other clients get a value API Gateway generates."
  type        = map(string)
  default     = {}
  sensitive   = true
}
