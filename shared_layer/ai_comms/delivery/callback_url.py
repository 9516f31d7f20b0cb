"""The StatusCallback URL every send sets: the API's status route, naming the message it is about.

``POST /{channel}/status?c=<conversation id>&p=<message position>``: the query names the message's
item, so a status is stored with one write and no index on the sid. Twilio signs the URL as given,
query included, and the status route verifies it like the inbound webhook; the route then checks
that the conversation belongs to the tenant whose secret signed it.
"""

from urllib.parse import urlencode

CONVERSATION_PARAM = "c"
POSITION_PARAM = "p"


def status_path(channel: str) -> str:
    return f"{channel}/status"


def status_callback_url(
    public_base_url: str, channel: str, conversation_id: str, position: str
) -> str | None:
    """None without a public base URL: the engine then does not ask for statuses."""
    if not public_base_url:
        return None
    query = urlencode({CONVERSATION_PARAM: conversation_id, POSITION_PARAM: position})
    return f"{public_base_url.rstrip('/')}/{status_path(channel)}?{query}"
