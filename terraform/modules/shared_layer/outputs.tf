output "name" {
  description = "Layer name."
  value       = aws_lambda_layer_version.this.layer_name
}

output "arn" {
  description = "Layer version ARN, what functions list in their layers."
  value       = aws_lambda_layer_version.this.arn
}

output "version" {
  description = "Layer version number."
  value       = aws_lambda_layer_version.this.version
}
