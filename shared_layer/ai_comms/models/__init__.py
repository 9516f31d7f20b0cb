"""The single definition of every record and event the engine stores or publishes."""
