"""What the reply processor does: lease the conversation, read the burst, ask the AI, send, record."""
