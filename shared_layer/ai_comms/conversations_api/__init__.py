"""The conversations API: the people (and their tools) who take conversations over from the AI."""
