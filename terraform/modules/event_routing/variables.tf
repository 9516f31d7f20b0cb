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
  description = <<-EOT
    Rules by key (the rule is named "<name>-<key>"): event pattern (JSON string) and the single
    target it delivers to. target_type "sqs", "sns" or "lambda" delivers to target_arn, whose
    resource policy must admit the rule (the module adds the Lambda permission itself; for a FIFO
    queue set message_group_id); "api_destination" delivers to an HTTPS endpoint through an API
    destination, connection and invocation role the module creates, the connection's credentials
    read from Secrets Manager (never given as values). max_retries and max_age_seconds override
    the module's retry policy for one rule.
  EOT
  type = map(object({
    description      = optional(string)
    event_pattern    = string
    target_type      = optional(string, "sqs")
    target_arn       = optional(string)
    message_group_id = optional(string)
    api_destination = optional(object({
      url                   = string
      http_method           = optional(string, "POST")
      rate_limit_per_second = optional(number)
      connection = object({
        auth                    = string
        api_key_name            = optional(string)
        api_key_secret_id       = optional(string)
        username                = optional(string)
        password_secret_id      = optional(string)
        authorization_endpoint  = optional(string)
        oauth_http_method       = optional(string, "POST")
        client_id               = optional(string)
        client_secret_secret_id = optional(string)
        oauth_parameters        = optional(map(string), {})
      })
    }))
    max_retries     = optional(number)
    max_age_seconds = optional(number)
  }))

  validation {
    condition     = alltrue([for rule in values(var.rules) : contains(["sqs", "sns", "lambda", "api_destination"], rule.target_type)])
    error_message = "target_type is \"sqs\", \"sns\", \"lambda\" or \"api_destination\"."
  }

  validation {
    condition     = alltrue([for rule in values(var.rules) : (rule.target_type == "api_destination") == (rule.api_destination != null)])
    error_message = "Give api_destination exactly for the rules whose target_type is \"api_destination\"."
  }

  validation {
    condition     = alltrue([for rule in values(var.rules) : (rule.target_type == "api_destination") == (rule.target_arn == null)])
    error_message = "Give target_arn for every rule except those whose target_type is \"api_destination\" (the module creates their destination)."
  }

  validation {
    condition     = alltrue([for rule in values(var.rules) : rule.message_group_id == null || rule.target_type == "sqs"])
    error_message = "message_group_id is for a FIFO SQS queue target only."
  }

  validation {
    condition = alltrue([
      # try(): Terraform's || evaluates both sides, and a rule without api_destination has no connection.
      for rule in values(var.rules) : rule.api_destination == null || try(
        rule.api_destination.connection.auth == "api_key" ? (rule.api_destination.connection.api_key_name != null && rule.api_destination.connection.api_key_secret_id != null) : (
          rule.api_destination.connection.auth == "basic" ? (rule.api_destination.connection.username != null && rule.api_destination.connection.password_secret_id != null) : (
            rule.api_destination.connection.auth == "oauth" && rule.api_destination.connection.authorization_endpoint != null && rule.api_destination.connection.client_id != null && rule.api_destination.connection.client_secret_secret_id != null
          )
        ),
        false
      )
    ])
    error_message = "A connection's auth is \"api_key\" (api_key_name, api_key_secret_id), \"basic\" (username, password_secret_id) or \"oauth\" (authorization_endpoint, client_id, client_secret_secret_id)."
  }

  validation {
    condition     = alltrue([for rule in values(var.rules) : rule.max_retries == null || (coalesce(rule.max_retries, 0) >= 0 && coalesce(rule.max_retries, 0) <= 185)])
    error_message = "EventBridge accepts 0 to 185 retry attempts per target."
  }

  validation {
    condition     = alltrue([for rule in values(var.rules) : rule.max_age_seconds == null || (coalesce(rule.max_age_seconds, 60) >= 60 && coalesce(rule.max_age_seconds, 60) <= 86400)])
    error_message = "EventBridge accepts a maximum event age of 60 to 86400 seconds."
  }
}

variable "dead_letter_arn" {
  description = "SQS queue ARN that receives events a target could not take after all retries."
  type        = string
}

variable "target_max_retries" {
  description = "Delivery attempts per event and target before dead-lettering."
  type        = number
  default     = 10

  validation {
    condition     = var.target_max_retries >= 0 && var.target_max_retries <= 185
    error_message = "EventBridge accepts 0 to 185 retry attempts per target."
  }
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
