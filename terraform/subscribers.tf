# Subscribers: other systems (a helpdesk, a team's queue, a CRM function) receive the engine's
# events without code. Each entry of var.subscribers becomes one rule on the engine's bus with one
# target, in module.event_routing beside the engine's own rules: retried with the same policy and
# dead-lettered to the same events DLQ, so an event a subscriber could not take is kept, alarmed
# and replayable (`ops replay --rule <key>-subscriber`) like any other.

locals {
  # "<key>-subscriber": no channel rule key ("<channel>-ai-reply", "-consent", "-outbound") nor a
  # fixed one ends that way, so a subscriber never shadows an engine rule or queue.
  subscriber_rule_keys = { for key in keys(var.subscribers) : key => "${key}-subscriber" }

  # sqs subscribers without an ARN get a queue (with its DLQ) of their own.
  created_subscriber_queues = {
    for key, subscriber in var.subscribers : key => subscriber
    if subscriber.target.type == "sqs" && subscriber.target.arn == null
  }

  # Only the fields a subscriber filters on: an absent field matches every value. reasons filter
  # HandoffRequested; events without a reason (every other type) pass.
  subscriber_detail_filters = {
    for key, subscriber in var.subscribers : key => merge(
      subscriber.routes == null ? {} : { route = subscriber.routes },
      subscriber.channels == null ? {} : { channel = subscriber.channels },
      subscriber.reasons == null ? {} : { reason = concat(subscriber.reasons, [{ exists = false }]) },
    )
  }

  subscriber_event_rules = {
    for key, subscriber in var.subscribers : local.subscriber_rule_keys[key] => {
      description = "Subscriber ${key}: ${join(", ", subscriber.detail_types)}${subscriber.routes == null ? "" : " on ${join(", ", subscriber.routes)}"}, to its ${subscriber.target.type} target."
      event_pattern = jsonencode(merge(
        { "detail-type" = subscriber.detail_types },
        length(local.subscriber_detail_filters[key]) == 0 ? {} : { detail = local.subscriber_detail_filters[key] },
      ))
      target_type      = subscriber.target.type
      target_arn       = subscriber.target.type == "api_destination" ? null : (subscriber.target.arn != null ? subscriber.target.arn : module.subscriber_queue[key].arn)
      message_group_id = subscriber.target.message_group_id
      api_destination = subscriber.target.type != "api_destination" ? null : {
        url                   = subscriber.target.url
        http_method           = subscriber.target.http_method
        rate_limit_per_second = subscriber.target.rate_limit_per_second
        connection            = subscriber.target.connection
      }
      max_retries     = subscriber.max_retries
      max_age_seconds = subscriber.max_age_seconds
    }
  }

  # An existing queue or topic admits the rule through its own policy: this statement, and nothing
  # wider (only EventBridge, only on behalf of this rule). Its owner adds it, or Terraform sets it as
  # the whole policy when the subscriber says manage_policy.
  subscriber_policy_statements = {
    for key, subscriber in var.subscribers : key => {
      Sid       = "EventBridgeRule${replace(key, "/[^a-z0-9]/", "")}"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = subscriber.target.type == "sqs" ? "sqs:SendMessage" : "sns:Publish"
      Resource  = subscriber.target.arn
      Condition = { ArnEquals = { "aws:SourceArn" = local.rule_arns[local.subscriber_rule_keys[key]] } }
    }
    if contains(["sqs", "sns"], subscriber.target.type) && subscriber.target.arn != null
  }
  managed_subscriber_policies = {
    for key, statement in local.subscriber_policy_statements : key => {
      type     = var.subscribers[key].target.type
      arn      = var.subscribers[key].target.arn
      document = jsonencode({ Version = "2012-10-17", Statement = [statement] })
    }
    if var.subscribers[key].target.manage_policy
  }

  # A filter naming a channel the engine does not have would silently match nothing.
  subscriber_unknown_channels = sort(distinct(flatten([
    for subscriber in values(var.subscribers) : [
      for channel in coalesce(subscriber.channels, []) : channel if !contains(keys(var.channels), channel)
    ]
  ])))
}

module "subscriber_queue" {
  source   = "./modules/queue"
  for_each = local.created_subscriber_queues

  name                    = "${local.name}-${each.key}-subscriber"
  allowed_event_rule_arns = [local.rule_arns[local.subscriber_rule_keys[each.key]]]
}

# manage_policy: the queue's or topic's whole policy becomes the one statement above.

data "aws_sqs_queue" "subscriber" {
  for_each = { for key, policy in local.managed_subscriber_policies : key => policy if policy.type == "sqs" }

  name = element(split(":", each.value.arn), 5)
}

resource "aws_sqs_queue_policy" "subscriber" {
  for_each = data.aws_sqs_queue.subscriber

  queue_url = each.value.url
  policy    = local.managed_subscriber_policies[each.key].document
}

resource "aws_sns_topic_policy" "subscriber" {
  for_each = { for key, policy in local.managed_subscriber_policies : key => policy if policy.type == "sns" }

  arn    = each.value.arn
  policy = each.value.document
}
