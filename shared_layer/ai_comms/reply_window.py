"""WhatsApp's customer service window: free-form messages reach a customer only within 24 hours of
their last message (https://support.twilio.com/hc/en-us/articles/360038232293); after it only an
approved template does. Other channels have no such window."""

from datetime import datetime, timedelta

from ai_comms.clock import parse_iso

WHATSAPP_PREFIX = "whatsapp:"
REPLY_WINDOW = timedelta(hours=24)


def window_closed(customer_address: str, last_inbound_at: str | None, now: datetime) -> bool:
    """With no customer message known there is no window to be in."""
    if not customer_address.startswith(WHATSAPP_PREFIX):
        return False
    if last_inbound_at is None:
        return True
    return bool(now - parse_iso(last_inbound_at) > REPLY_WINDOW)
