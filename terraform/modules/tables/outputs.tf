output "names" {
  description = "Table names by role: company_data, conversations, idempotency."
  value = {
    company_data  = aws_dynamodb_table.company_data.name
    conversations = aws_dynamodb_table.conversations.name
    idempotency   = aws_dynamodb_table.idempotency.name
  }
}

output "arns" {
  description = "Table ARNs by role: company_data, conversations, idempotency."
  value = {
    company_data  = aws_dynamodb_table.company_data.arn
    conversations = aws_dynamodb_table.conversations.arn
    idempotency   = aws_dynamodb_table.idempotency.arn
  }
}

output "conversations_index_arns" {
  description = "ARN pattern covering the indexes of the conversations table, for IAM Query grants."
  value       = "${aws_dynamodb_table.conversations.arn}/index/*"
}
