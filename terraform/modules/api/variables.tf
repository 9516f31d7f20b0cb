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
  description = "Routes by name: a path of up to three parts (\"whatsapp\", \"conversations/{conversation_id}\"), its method, the Lambda function it proxies to, whether an API key is required, and an optional throttle of its own (else the stage's)."
  type = map(object({
    path             = string
    method           = optional(string, "POST")
    function_name    = string
    invoke_arn       = string
    api_key_required = optional(bool, false)
    throttle = optional(object({
      rate_limit  = number
      burst_limit = number
    }))
  }))

  validation {
    condition     = alltrue([for route in var.routes : length(split("/", route.path)) <= 3])
    error_message = "A route's path has at most three parts."
  }
}

variable "binary_media_types" {
  description = "Content types API Gateway passes to the functions base64-encoded."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags of the REST API, beside the provider's default tags."
  type        = map(string)
  default     = {}
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

variable "api_clients" {
  description = "API clients by name, each with the limits of its own usage plan: steady requests per second, burst, and a quota of requests per period (DAY, WEEK or MONTH)."
  type = map(object({
    rate_limit   = number
    burst_limit  = number
    quota_limit  = number
    quota_period = string
  }))
  default = {}

  validation {
    condition     = alltrue([for client in values(var.api_clients) : contains(["DAY", "WEEK", "MONTH"], client.quota_period)])
    error_message = "quota_period must be DAY, WEEK or MONTH."
  }
}

variable "api_key_values" {
  description = "Key values by client, for clients whose key is managed outside (Secrets Manager); the other clients get a value API Gateway generates."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "waf" {
  description = "WAF in front of the stage: web_acl_arn associates an existing web ACL; otherwise requests_per_ip_per_5_minutes creates one with a rate-based rule per source IP. null: no WAF."
  type = object({
    web_acl_arn                   = optional(string)
    requests_per_ip_per_5_minutes = optional(number, 2000)
  })
  default = null
}
