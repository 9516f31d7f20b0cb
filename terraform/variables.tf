variable "name_prefix" {
  description = "First part of every resource name, \"<name_prefix>-<workspace>-...\"."
  type        = string
  default     = "ai-comms"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix must be 2-21 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of every resource."
  type        = string
  default     = "eu-west-1"
}

variable "aws_endpoint_url" {
  description = "Emulator URL (moto server, LocalStack). When set, every AWS endpoint points there and credentials are not validated. Null for real AWS."
  type        = string
  default     = null
}

variable "aws_dynamodb_endpoint_url" {
  description = "DynamoDB endpoint of the emulator when it is not aws_endpoint_url (the local cloud's DynamoDB Local front under moto). Null uses aws_endpoint_url."
  type        = string
  default     = null
}

variable "channels" {
  description = "Channels speaking the Twilio webhook format, by name (also the webhook path \"/<name>\"): debounce delay of the AI reply queue and the address prefix Twilio uses (\"whatsapp:\")."
  type = map(object({
    debounce_seconds = number
    address_prefix   = string
  }))
  default = {
    whatsapp = {
      debounce_seconds = 5
      address_prefix   = "whatsapp:"
    }
  }

  validation {
    # Lowercase alphanumerics keep channel-derived names (queues, rules, routes) from colliding
    # with the fixed ones such as "handoff" or "initiate-conversation".
    condition     = length(var.channels) > 0 && alltrue([for name in keys(var.channels) : can(regex("^[a-z][a-z0-9]{0,19}$", name))])
    error_message = "Define at least one channel; channel names are 1-20 lowercase letters or digits, starting with a letter."
  }

  validation {
    condition     = alltrue([for channel in values(var.channels) : channel.debounce_seconds >= 0 && channel.debounce_seconds <= 900])
    error_message = "debounce_seconds is an SQS delay: 0 to 900 seconds."
  }
}

variable "unmatched_target_arn" {
  description = "Target of the unmatched-reply rule (replies no tenant claims); null sends them to the handoff queue. An external target must allow EventBridge itself."
  type        = string
  default     = null
}

variable "event_archive_retention_days" {
  description = "Days the event archive keeps every event for replay (0 keeps them forever)."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Retention of the Lambda log groups, in days."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653)."
  }
}

variable "lambda_log_level" {
  description = "Log level of the functions (POWERTOOLS_LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], var.lambda_log_level)
    error_message = "lambda_log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL."
  }
}

variable "lambda_tracing_mode" {
  description = "X-Ray tracing of the functions and the API stage: \"Active\" traces requests, \"PassThrough\" leaves it to callers."
  type        = string
  default     = "PassThrough"

  validation {
    condition     = contains(["Active", "PassThrough"], var.lambda_tracing_mode)
    error_message = "lambda_tracing_mode must be \"Active\" or \"PassThrough\"."
  }
}

variable "table_deletion_protection" {
  description = "Refuse to delete the DynamoDB tables (turn on where the data matters)."
  type        = bool
  default     = false
}

variable "public_base_url" {
  description = "Public base URL Twilio calls (custom domain or stage URL): the senders' StatusCallback (<url>/<channel>/status) and the URL X-Twilio-Signature is verified against; empty means the stage's own invoke URL for StatusCallback and lets the webhook and status route rebuild it from the request."
  type        = string
  default     = ""
}

variable "api_binary_media_types" {
  description = "Media types API Gateway passes to the functions base64-encoded (the webhook decodes them); [\"*/*\"] encodes every body."
  type        = list(string)
  default     = []
}

variable "api_tags" {
  description = "Tags of the REST API. LocalStack reads a `_custom_id_` tag as the API's id, which gives a LocalStack deployment an API URL known before the apply (public_base_url)."
  type        = map(string)
  default     = {}
}

variable "max_webhook_body_bytes" {
  description = "Largest webhook body the handler accepts, in bytes. The default fits the worst valid WhatsApp message: 4,096 characters of 4 UTF-8 bytes each, url-encoded as 3 bytes per byte (49,152 bytes), plus 16 KiB for the other fields."
  type        = number
  default     = 65536
}

variable "twilio_api_base_url" {
  description = "Twilio REST API base URL for the sending functions; empty uses Twilio's own (tests point it at a fake)."
  type        = string
  default     = ""
}

variable "openai_base_url" {
  description = "OpenAI API base URL for the AI functions; empty uses OpenAI's own (tests point it at a fake)."
  type        = string
  default     = ""
}

variable "event_target_max_retries" {
  description = "EventBridge delivery attempts per event and target before dead-lettering."
  type        = number
  default     = 10
}

variable "event_target_max_age_seconds" {
  description = "Maximum age of an event EventBridge still retries before dead-lettering."
  type        = number
  default     = 3600
}

variable "conversation_ttl_days" {
  description = "Days after its last message, in or out, a conversation expires (DynamoDB TTL on expires_at); each message item expires that many days after it was written."
  type        = number
  default     = 90
}

variable "build_dir" {
  description = "Folder holding layer.zip and <function>.zip from the build script; null means \"../build\" next to this module."
  type        = string
  default     = null
}

variable "reply_batch_size" {
  description = "AI-reply queue messages per reply processor invocation. 1 lets each record run in its own environment, so one slow AI call never delays another conversation."
  type        = number
  default     = 1

  validation {
    condition     = var.reply_batch_size >= 1 && var.reply_batch_size <= 10
    error_message = "reply_batch_size must be 1 to 10."
  }
}

variable "reply_processor_timeout_seconds" {
  description = "Timeout of the reply processor; must cover one AI turn with its retries (see the reply_processor_covers_ai_retries check) and the Twilio sends, and stay within the ai-reply queues' visibility timeout."
  type        = number
  default     = 90

  validation {
    condition     = var.reply_processor_timeout_seconds >= 10 && var.reply_processor_timeout_seconds <= 360
    error_message = "reply_processor_timeout_seconds must be 10 to 360 (the ai-reply queues' visibility timeout)."
  }
}

variable "openai_timeout_seconds" {
  description = "Timeout of one OpenAI request, in seconds, before the engine retries it (reading the AI conversation first, so an input is never added twice)."
  type        = number
  default     = 15

  validation {
    condition     = var.openai_timeout_seconds > 0 && var.openai_timeout_seconds <= 120
    error_message = "openai_timeout_seconds must be above 0 and at most 120."
  }
}

variable "openai_max_retries" {
  description = "Retries of one OpenAI request on 429, 5xx and timeouts within the invocation (the engine retries, not the SDK), before the SQS retry."
  type        = number
  default     = 2

  validation {
    condition     = var.openai_max_retries >= 0 && var.openai_max_retries <= 5
    error_message = "openai_max_retries must be 0 to 5."
  }
}

variable "tenant_pause_seconds" {
  description = "First pause of a tenant whose OpenAI key, quota or Twilio credentials are refused (each pause in a row doubles, up to 900 s); its work waits, alarmed, and resumes by itself."
  type        = number
  default     = 60

  validation {
    condition     = var.tenant_pause_seconds >= 1 && var.tenant_pause_seconds <= 900
    error_message = "tenant_pause_seconds must be 1 to 900."
  }
}

variable "reply_retry_base_seconds" {
  description = "First backoff of a failed reply or outbound record, doubled on each receive: a transient OpenAI, Twilio or AWS failure is retried after this, not after the queue's visibility timeout."
  type        = number
  default     = 10

  validation {
    condition     = var.reply_retry_base_seconds >= 0 && var.reply_retry_base_seconds <= 900
    error_message = "reply_retry_base_seconds is an SQS visibility timeout: 0 to 900 seconds."
  }
}

variable "api_usage_plan" {
  description = "Default usage plan of each API client (one plan per client in api_keys, unless the client sets its own usage_plan): steady requests per second (rate_limit), burst (burst_limit) and a quota of requests per quota_period (DAY, WEEK or MONTH)."
  type = object({
    rate_limit   = number
    burst_limit  = number
    quota_limit  = number
    quota_period = string
  })
  default = {
    rate_limit   = 10
    burst_limit  = 20
    quota_limit  = 100000
    quota_period = "DAY"
  }

  validation {
    condition     = contains(["DAY", "WEEK", "MONTH"], var.api_usage_plan.quota_period)
    error_message = "api_usage_plan.quota_period must be DAY, WEEK or MONTH."
  }

  validation {
    condition     = var.api_usage_plan.rate_limit > 0 && var.api_usage_plan.burst_limit > 0 && var.api_usage_plan.quota_limit > 0
    error_message = "api_usage_plan limits must be positive."
  }
}

variable "api_keys" {
  description = "API clients of the client routes, by client name (the name a project's api_clients lists to let the client act for it). secret_id names a Secrets Manager secret holding {\"api_key\": \"<20+ characters>\"}; without it API Gateway generates the value (read it with `aws apigateway get-api-key --api-key <id> --include-value`). usage_plan overrides api_usage_plan for the client. Key values never go in tfvars."
  type = map(object({
    secret_id = optional(string)
    usage_plan = optional(object({
      rate_limit   = number
      burst_limit  = number
      quota_limit  = number
      quota_period = string
    }))
  }))
  default = {}

  validation {
    condition     = alltrue([for client in keys(var.api_keys) : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", client))])
    error_message = "Client names are 1-63 lowercase letters, digits or dashes."
  }
}

variable "max_initiate_body_bytes" {
  description = "Largest POST /initiate-conversation body the function accepts; larger ones get 413."
  type        = number
  default     = 16384
}

variable "channel_sender_timeout_seconds" {
  description = "Timeout of the channel sender: two AI calls with their retries, one Twilio send, one wait for a concurrent delivery."
  type        = number
  default     = 180

  validation {
    condition     = var.channel_sender_timeout_seconds >= 10 && var.channel_sender_timeout_seconds <= 900
    error_message = "channel_sender_timeout_seconds must be 10 to 900."
  }
}

variable "outbound_visibility_timeout_seconds" {
  description = "Visibility timeout of the outbound queues; null means six times the sender's timeout (AWS's advice). AWS requires at least the sender's timeout; lower values are for emulator tests of the heartbeat."
  type        = number
  default     = null
}

variable "channel_sender_reserved_concurrency" {
  description = "Concurrency reserved for (and capping) the channel sender, protecting tenants' Twilio and OpenAI rate limits; -1 leaves it unreserved."
  type        = number
  default     = -1
}

variable "error_rate_alarm_threshold_percent" {
  description = "A function's errors as a percentage of its invocations above which its error-rate alarm fires."
  type        = number
  default     = 5

  validation {
    condition     = var.error_rate_alarm_threshold_percent > 0 && var.error_rate_alarm_threshold_percent <= 100
    error_message = "error_rate_alarm_threshold_percent must be above 0 and at most 100."
  }
}

variable "error_rate_alarm_period_seconds" {
  description = "Period over which a function's error rate is computed."
  type        = number
  default     = 300
}

variable "error_rate_alarm_evaluation_periods" {
  description = "Consecutive periods above the threshold before the error-rate alarm fires."
  type        = number
  default     = 1
}

variable "webhook_throttle" {
  description = "Throttle of each channel's Twilio webhook route (requests per second, burst): Twilio's traffic for every tenant arrives here."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
  default = {
    rate_limit  = 100
    burst_limit = 200
  }
}

variable "api_throttle" {
  description = "Throttle of each client route as a whole (requests per second, burst), above every client's own usage plan."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
  default = {
    rate_limit  = 50
    burst_limit = 100
  }
}

variable "waf" {
  description = "WAF in front of the API stage: web_acl_arn associates an existing REGIONAL web ACL; without it, a web ACL is created with a rate-based rule blocking any source IP above requests_per_ip_per_5_minutes. null: no WAF."
  type = object({
    web_acl_arn                   = optional(string)
    requests_per_ip_per_5_minutes = optional(number, 2000)
  })
  default = null
}

variable "subscribers" {
  description = <<-EOT
    Systems that receive the engine's events without code, by name (1-24 lowercase letters,
    digits, "_" or "-"): each gets an EventBridge rule "<name_prefix>-<workspace>-<key>-subscriber"
    on the engine's bus and one target, retried like every target (max_retries and max_age_seconds
    override event_target_max_retries / event_target_max_age_seconds) and dead-lettered to the
    events DLQ. The rule matches detail_types (ReplyReceived, ConversationRequested,
    HandoffRequested, ReplyWindowClosed, DeliveryFailed) and, when given, routes, channels and
    HandoffRequested reasons (ai_action, ai_unanswerable, reply_window_closed, reply_undelivered;
    other detail types pass). target.type: "sqs" (arn of an existing queue, or no arn: a queue
    "<...>-<key>-subscriber" is created with its DLQ and alarm, admitting only the rule, URL in the
    subscriber_queue_urls output; message_group_id for a FIFO queue), "sns" (topic arn), "lambda"
    (function arn; the permission for the rule alone is added) or "api_destination" (url,
    http_method, rate_limit_per_second and connection: auth "api_key" with api_key_name and
    api_key_secret_id, "basic" with username and password_secret_id, or "oauth" with
    authorization_endpoint, oauth_http_method, client_id, client_secret_secret_id and non-secret
    oauth_parameters; each secret holds {"api_key": ...}, {"password": ...} or
    {"client_secret": ...}). Credentials never go in tfvars. An existing queue's or topic's policy
    must admit the rule alone: the subscriber_target_policies output holds that statement, and
    manage_policy = true has Terraform set it as the queue's or topic's whole policy (for a queue or
    topic of this account that serves this subscriber alone).
  EOT
  type = map(object({
    detail_types = list(string)
    routes       = optional(list(string))
    channels     = optional(list(string))
    reasons      = optional(list(string))
    target = object({
      type                  = string
      arn                   = optional(string)
      message_group_id      = optional(string)
      manage_policy         = optional(bool, false)
      url                   = optional(string)
      http_method           = optional(string, "POST")
      rate_limit_per_second = optional(number)
      connection = optional(object({
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
      }))
    })
    max_retries     = optional(number)
    max_age_seconds = optional(number)
  }))
  default = {}

  validation {
    # No hyphenated suffix of a channel's names ("-ai-reply", "-outbound") ends in "-subscriber",
    # so subscriber rules and queues never collide with the engine's.
    condition     = alltrue([for key in keys(var.subscribers) : can(regex("^[a-z][a-z0-9_-]{0,23}$", key))])
    error_message = "Subscriber names are 1-24 lowercase letters, digits, \"_\" or \"-\", starting with a letter."
  }

  validation {
    # The engine's events (shared_layer/ai_comms/models/event_types.py) and the routes each carries;
    # tests/unit/test_subscribers.py holds this list to the pydantic models.
    condition = alltrue(flatten([
      for subscriber in values(var.subscribers) : [
        length(subscriber.detail_types) > 0,
        [for detail_type in subscriber.detail_types : contains(["ReplyReceived", "ConversationRequested", "HandoffRequested", "ReplyWindowClosed", "DeliveryFailed"], detail_type)],
      ]
    ]))
    error_message = "detail_types lists one or more of ReplyReceived, ConversationRequested, HandoffRequested, ReplyWindowClosed, DeliveryFailed."
  }

  validation {
    # Every route must be one the engine emits, and every chosen detail type must carry one of
    # the routes (otherwise that type could never match).
    condition = alltrue(flatten([
      for subscriber in values(var.subscribers) : subscriber.routes == null ? [true] : concat(
        [length(coalesce(subscriber.routes, [])) > 0],
        [for route in coalesce(subscriber.routes, []) : contains(["ai_reply", "handoff", "ignored", "unmatched", "outbound", "window_closed", "delivery_failed"], route)],
        [
          for detail_type in subscriber.detail_types : length(setintersection(coalesce(subscriber.routes, []), lookup({
            ReplyReceived         = ["ai_reply", "handoff", "ignored", "unmatched"]
            ConversationRequested = ["outbound"]
            HandoffRequested      = ["handoff"]
            ReplyWindowClosed     = ["window_closed"]
            DeliveryFailed        = ["delivery_failed"]
          }, detail_type, []))) > 0
        ],
      )
    ]))
    error_message = "routes (null for all) lists routes the chosen detail types carry: ReplyReceived ai_reply, handoff, ignored, unmatched; ConversationRequested outbound; HandoffRequested handoff; ReplyWindowClosed window_closed; DeliveryFailed delivery_failed."
  }

  validation {
    condition = alltrue(flatten([
      for subscriber in values(var.subscribers) : subscriber.reasons == null ? [true] : concat(
        [length(coalesce(subscriber.reasons, [])) > 0, contains(subscriber.detail_types, "HandoffRequested")],
        [for reason in coalesce(subscriber.reasons, []) : contains(["ai_action", "ai_unanswerable", "reply_window_closed", "reply_undelivered"], reason)],
      )
    ]))
    error_message = "reasons (null for all) filters HandoffRequested, so detail_types must include it; reasons are ai_action, ai_unanswerable, reply_window_closed, reply_undelivered."
  }

  validation {
    condition = alltrue(flatten([
      for subscriber in values(var.subscribers) : subscriber.channels == null ? [true] : concat(
        [length(coalesce(subscriber.channels, [])) > 0],
        [for channel in coalesce(subscriber.channels, []) : can(regex("^[a-z][a-z0-9]{0,19}$", channel))],
      )
    ]))
    error_message = "channels (null for all) lists channel names of the channels variable."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) : (
        subscriber.target.type == "sqs" ? (subscriber.target.arn == null || can(regex("^arn:aws[a-z-]*:sqs:", coalesce(subscriber.target.arn, "-")))) : (
          subscriber.target.type == "sns" ? can(regex("^arn:aws[a-z-]*:sns:", coalesce(subscriber.target.arn, "-"))) : (
            subscriber.target.type == "lambda" ? can(regex("^arn:aws[a-z-]*:lambda:[^:]+:[0-9]+:function:", coalesce(subscriber.target.arn, "-"))) : (
              subscriber.target.type == "api_destination" && subscriber.target.arn == null
            )
          )
        )
      ) && (subscriber.target.type == "api_destination") == (subscriber.target.url != null || subscriber.target.connection != null)
    ])
    error_message = "target.type is \"sqs\" (arn of a queue, or none to create one), \"sns\" (topic arn), \"lambda\" (function arn) or \"api_destination\" (url and connection, no arn); url and connection belong to api_destination only."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) : (subscriber.target.message_group_id != null) == (subscriber.target.type == "sqs" && endswith(coalesce(subscriber.target.arn, "-"), ".fifo"))
    ])
    error_message = "message_group_id is required for a FIFO queue (an arn ending in \".fifo\") and only there."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) : !subscriber.target.manage_policy || (contains(["sqs", "sns"], subscriber.target.type) && subscriber.target.arn != null)
    ])
    error_message = "manage_policy is for an existing queue or topic: a target of type \"sqs\" or \"sns\" with an arn (a queue the module creates has its policy already)."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) : subscriber.target.type != "api_destination" || (
        can(regex("^https://", coalesce(subscriber.target.url, "-"))) &&
        contains(["POST", "PUT", "PATCH", "GET", "DELETE", "HEAD", "OPTIONS"], subscriber.target.http_method) &&
        (subscriber.target.rate_limit_per_second == null || coalesce(subscriber.target.rate_limit_per_second, 1) >= 1) &&
        subscriber.target.connection != null
      )
    ])
    error_message = "An api_destination target needs an https:// url, an HTTP method (POST, PUT, PATCH, GET, DELETE, HEAD, OPTIONS), a rate_limit_per_second of at least 1 when given, and a connection."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) : subscriber.target.connection == null || try(
        subscriber.target.connection.auth == "api_key" ? (subscriber.target.connection.api_key_name != null && subscriber.target.connection.api_key_secret_id != null) : (
          subscriber.target.connection.auth == "basic" ? (subscriber.target.connection.username != null && subscriber.target.connection.password_secret_id != null) : (
            subscriber.target.connection.auth == "oauth" && can(regex("^https://", coalesce(subscriber.target.connection.authorization_endpoint, "-"))) && subscriber.target.connection.client_id != null && subscriber.target.connection.client_secret_secret_id != null && contains(["GET", "POST", "PUT"], subscriber.target.connection.oauth_http_method)
          )
        ),
        false
      )
    ])
    error_message = "connection.auth is \"api_key\" (api_key_name, api_key_secret_id), \"basic\" (username, password_secret_id) or \"oauth\" (https:// authorization_endpoint, oauth_http_method GET, POST or PUT, client_id, client_secret_secret_id); secrets are Secrets Manager names or ARNs, never values."
  }

  validation {
    condition = alltrue([
      for subscriber in values(var.subscribers) :
      (subscriber.max_retries == null || (coalesce(subscriber.max_retries, 0) >= 0 && coalesce(subscriber.max_retries, 0) <= 185)) &&
      (subscriber.max_age_seconds == null || (coalesce(subscriber.max_age_seconds, 60) >= 60 && coalesce(subscriber.max_age_seconds, 60) <= 86400))
    ])
    error_message = "max_retries is 0 to 185 and max_age_seconds 60 to 86400 (EventBridge's limits)."
  }
}

variable "handoff_queue_age_alarm_seconds" {
  description = "Age of the oldest conversation waiting in the handoff queue above which its alarm notifies the alerts topic: people are not taking the conversations handed to them. null: no alarm (for teams that take handoffs from a subscriber rather than from this queue)."
  type        = number
  default     = 900

  validation {
    condition     = coalesce(var.handoff_queue_age_alarm_seconds, 900) >= 60 && coalesce(var.handoff_queue_age_alarm_seconds, 900) < 345600
    error_message = "handoff_queue_age_alarm_seconds is at least 60 and below the handoff queue's four-day retention (345600), or null."
  }
}
