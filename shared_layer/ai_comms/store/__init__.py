"""DynamoDB repositories: the only code that knows key layouts and expressions."""
