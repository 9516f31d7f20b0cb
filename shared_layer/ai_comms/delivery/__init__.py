"""Delivery statuses: what Twilio reports about each message after accepting it."""
