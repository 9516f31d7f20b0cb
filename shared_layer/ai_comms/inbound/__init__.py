"""What the Twilio webhook does with a customer message: decode, verify, dedupe, record, route, publish."""
