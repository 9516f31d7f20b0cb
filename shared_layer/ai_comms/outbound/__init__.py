"""Starting conversations: the initiate API and the channel sender that sends the first template."""
