output "names" {
  description = "Table names by role: company_data, conversations, messages, consent, idempotency."
  value = {
    company_data  = aws_dynamodb_table.company_data.name
    conversations = aws_dynamodb_table.conversations.name
    messages      = aws_dynamodb_table.messages.name
    consent       = aws_dynamodb_table.consent.name
    idempotency   = aws_dynamodb_table.idempotency.name
  }
}

output "arns" {
  description = "Table ARNs by role: company_data, conversations, messages, consent, idempotency."
  value = {
    company_data  = aws_dynamodb_table.company_data.arn
    conversations = aws_dynamodb_table.conversations.arn
    messages      = aws_dynamodb_table.messages.arn
    consent       = aws_dynamodb_table.consent.arn
    idempotency   = aws_dynamodb_table.idempotency.arn
  }
}

output "conversations_index_arns" {
  description = "ARN pattern covering the indexes of the conversations table, for IAM Query grants."
  value       = "${aws_dynamodb_table.conversations.arn}/index/*"
}

output "messages_stream_arn" {
  description = "Stream of the messages table (new items), which the outbox relay reads."
  value       = aws_dynamodb_table.messages.stream_arn
}

output "conversations_indexes" {
  description = "ARN of each global index of the conversations table, by name: grants name the index they query."
  value = {
    for name in values(local.conversations_indexes) :
    name => "${aws_dynamodb_table.conversations.arn}/index/${name}"
  }
}
