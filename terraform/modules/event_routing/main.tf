# The engine's event bus, an archive of everything on it (replay after a bad deploy), and one rule
# with one target per entry of var.rules. Every target retries with the given policy and then
# dead-letters to one queue, so an undeliverable event is never dropped silently.

resource "aws_cloudwatch_event_bus" "this" {
  name = var.name
}

resource "aws_cloudwatch_event_archive" "this" {
  name             = "${var.name}-archive"
  description      = "Every event on ${var.name}, kept for replay."
  event_source_arn = aws_cloudwatch_event_bus.this.arn
  retention_days   = var.archive_retention_days
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = var.rules

  name           = "${var.name}-${each.key}"
  description    = each.value.description
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = each.value.event_pattern
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = var.rules

  rule           = aws_cloudwatch_event_rule.this[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "deliver"
  arn            = each.value.target_arn

  retry_policy {
    maximum_event_age_in_seconds = var.target_max_age_seconds
    maximum_retry_attempts       = var.target_max_retries
  }

  dead_letter_config {
    arn = var.dead_letter_arn
  }
}
