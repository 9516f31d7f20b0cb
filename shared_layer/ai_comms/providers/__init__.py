"""Everything that talks to a service outside the store: OpenAI, Twilio, EventBridge, SQS, Secrets Manager."""
