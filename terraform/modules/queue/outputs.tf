output "name" {
  description = "Queue name."
  value       = aws_sqs_queue.this.name
}

output "arn" {
  description = "Queue ARN."
  value       = aws_sqs_queue.this.arn
}

output "url" {
  description = "Queue URL."
  value       = aws_sqs_queue.this.url
}

output "dlq_name" {
  description = "Dead-letter queue name, or null without one."
  value       = try(aws_sqs_queue.dlq[0].name, null)
}

output "dlq_arn" {
  description = "Dead-letter queue ARN, or null without one."
  value       = try(aws_sqs_queue.dlq[0].arn, null)
}

output "dlq_url" {
  description = "Dead-letter queue URL, or null without one."
  value       = try(aws_sqs_queue.dlq[0].url, null)
}
