output "name" {
  description = "Prefix of every resource name, \"<name_prefix>-<workspace>\"."
  value       = local.name
}

output "workspace" {
  description = "Terraform workspace (also the API stage and the ENVIRONMENT of the functions)."
  value       = terraform.workspace
}

output "region" {
  description = "AWS region."
  value       = data.aws_region.current.name
}

output "api_id" {
  description = "REST API id."
  value       = module.api.id
}

output "api_stage" {
  description = "REST API stage name."
  value       = module.api.stage_name
}

output "api_binary_media_types" {
  description = "Media types the API base64-encodes (the local runner applies them: the emulator does not keep them)."
  value       = var.api_binary_media_types
}

output "api_invoke_url" {
  description = "Base URL of the API stage."
  value       = module.api.invoke_url
}

output "webhook_urls" {
  description = "Twilio webhook URL of each channel, \"<api_invoke_url>/<channel>\"."
  value       = { for channel in keys(var.channels) : channel => module.api.route_urls[channel] }
}

output "event_bus_name" {
  description = "Event bus name."
  value       = module.event_routing.bus_name
}

output "event_bus_arn" {
  description = "Event bus ARN."
  value       = module.event_routing.bus_arn
}

output "tables" {
  description = "DynamoDB table names: company_data, conversations, messages, consent, idempotency."
  value       = module.tables.names
}

output "queues" {
  description = "Queue URLs by key: \"<channel>-ai-reply\", \"<channel>-outbound\", \"handoff\", \"events-dlq\" and \"<key>-subscriber\" for each queue created for a subscriber."
  value = merge(
    { for channel, queue in module.ai_reply_queue : "${channel}-ai-reply" => queue.url },
    { for channel, queue in module.outbound_queue : "${channel}-outbound" => queue.url },
    { for key, queue in module.subscriber_queue : "${key}-subscriber" => queue.url },
    {
      handoff      = module.handoff_queue.url
      "events-dlq" = module.events_dlq.url
    },
  )
}

output "dlqs" {
  description = "Dead-letter queue URLs by dead-letter queue name (\"<queue>-dlq\"; the events DLQ is the dead-letter queue of every rule target)."
  value = merge(
    { for queue in module.ai_reply_queue : queue.dlq_name => queue.dlq_url },
    { for queue in module.outbound_queue : queue.dlq_name => queue.dlq_url },
    { for queue in module.subscriber_queue : queue.dlq_name => queue.dlq_url },
    {
      (module.handoff_queue.dlq_name) = module.handoff_queue.dlq_url
      (module.events_dlq.name)        = module.events_dlq.url
      (module.outbox_failures.name)   = module.outbox_failures.url
    },
  )
}

output "rules" {
  description = "Event pattern JSON by EventBridge rule name, for the engine's own routing (the subscribers' rules are in subscriber_rules)."
  value = {
    for key, name in module.event_routing.rule_names : name => local.event_rules[key].event_pattern
    if contains(keys(local.event_rules), key)
  }
}

output "subscriber_rules" {
  description = "Event pattern JSON by EventBridge rule name, for the rules of var.subscribers."
  value = {
    for key, name in module.event_routing.rule_names : name => local.subscriber_event_rules[key].event_pattern
    if contains(keys(local.subscriber_event_rules), key)
  }
}

output "subscriber_rule_arns" {
  description = "EventBridge rule ARN of each subscriber, by its key in var.subscribers (the aws:SourceArn an existing target's policy must admit)."
  value       = { for key, rule_key in local.subscriber_rule_keys : key => module.event_routing.rule_arns[rule_key] }

  precondition {
    condition     = length(local.subscriber_unknown_channels) == 0
    error_message = "subscribers name channels the channels variable does not define: ${join(", ", local.subscriber_unknown_channels)}."
  }
}

output "subscriber_queue_urls" {
  description = "URL of the queue created for each sqs subscriber without an arn, by its key in var.subscribers."
  value       = { for key, queue in module.subscriber_queue : key => queue.url }
}

output "subscriber_target_policies" {
  description = "For each sqs subscriber with an arn and each sns subscriber, by its key in var.subscribers: the policy statement (JSON) the queue's or topic's policy must hold to admit its rule alone (Terraform sets it when target.manage_policy is true)."
  value       = { for key, statement in local.subscriber_policy_statements : key => jsonencode(statement) }
}

output "subscriber_target_arns" {
  description = "The ARN each subscriber's rule delivers to (the API destination for an api_destination subscriber), by its key in var.subscribers."
  value       = { for key, rule_key in local.subscriber_rule_keys : key => module.event_routing.target_arns[rule_key] }
}

output "functions" {
  description = "Lambda function names by short name (the lambdas/<name> folder)."
  value = {
    twilio_webhook  = module.twilio_webhook.function_name
    reply_processor = module.reply_processor.function_name

    initiate_conversation = module.initiate_conversation.function_name
    channel_sender        = module.channel_sender.function_name
    outbox_relay          = module.outbox_relay.function_name
    status_callback       = module.status_callback.function_name
    conversations_api     = module.conversations_api.function_name
  }
}

output "tenant_secret_prefix" {
  description = "Name prefix of tenant secrets in Secrets Manager; the functions may read only these."
  value       = local.tenant_secret_prefix
}

output "alerts_topic_arn" {
  description = "SNS topic the DLQ alarms and the handoff queue's age alarm notify; subscribe on-call people or tools to it."
  value       = module.monitoring.alerts_topic_arn
}

output "handoff_notices_topic_arn" {
  description = "SNS topic announcing conversations that need a person; subscribe the team to it."
  value       = aws_sns_topic.handoff_notices.arn
}

output "initiate_url" {
  description = "URL clients POST conversation requests to, with their key in the x-api-key header."
  value       = module.api.route_urls["initiate-conversation"]
}

output "conversations_url" {
  description = "Base URL of the conversations API (GET /conversations and the routes under it), with the client's key in x-api-key."
  value       = module.api.route_urls["conversations-list"]
}

output "api_key_ids" {
  description = "API Gateway key id of each client in var.api_keys (read a value with `aws apigateway get-api-key --api-key <id> --include-value`)."
  value       = module.api.api_key_ids
}

output "usage_plan_ids" {
  description = "Usage plan of each API client, by client."
  value       = module.api.usage_plan_ids
}

output "web_acl_arn" {
  description = "The WAF web ACL in front of the API stage, or null."
  value       = module.api.web_acl_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the engine (functions, queues, DLQs, API, AI latency, replies)."
  value       = aws_cloudwatch_dashboard.engine.dashboard_name
}

output "error_rate_alarm_names" {
  description = "Error-rate alarm of each function, by short function name."
  value       = { for short, alarm in aws_cloudwatch_metric_alarm.function_error_rate : short => alarm.alarm_name }
}

output "handoff_queue_age_alarm_name" {
  description = "Alarm on the age of the oldest conversation waiting in the handoff queue (null when handoff_queue_age_alarm_seconds is null)."
  value       = lookup(module.monitoring.queue_age_alarm_names, "handoff", null)
}
