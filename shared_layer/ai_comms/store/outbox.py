"""Events written to the outbox: items of the messages table the outbox relay publishes.

A function that must publish an event together with a state change writes the event as an item in
the same transaction; the table's stream hands it to the relay (inbound.outbox), which publishes it
with its retries. So the change and its event happen together or not at all, and the function
needs no PutEvents. Each event item has a partition of its own per conversation
(``outbox#<conversation_id>``): a conversation's history never reads one. Writing the same event
again replaces the item with itself, a MODIFY the relay's filter drops: a replayed write publishes
nothing twice.
"""

import json
from typing import Any

from ai_comms.models.events import EventDetail
from ai_comms.store.dynamo import to_item

OUTBOX_PARTITION_PREFIX = "outbox#"
# Event items outlive the stream's 24 hours only as a record of what was published.
OUTBOX_RETENTION_SECONDS = 7 * 24 * 3600


def outbox_put_request(
    table: str, detail: EventDetail, dedupe_key: str, at: str, now_epoch: int, source: str | None = None
) -> dict[str, Any]:
    """A transaction item writing ``detail`` to the outbox. ``dedupe_key`` names the event: the same
    key writes the same item."""
    conversation_id = str(getattr(detail, "conversation_id", "") or "-")
    item = {
        "conversation_id": OUTBOX_PARTITION_PREFIX + conversation_id,
        "position": f"{detail.DETAIL_TYPE}#{dedupe_key}",
        "outbox": True,
        "source": source or detail.SOURCE,
        "detail_type": detail.DETAIL_TYPE,
        "detail": detail.model_dump_json(),
        "at": at,
        "expires_at": now_epoch + OUTBOX_RETENTION_SECONDS,
    }
    return {"Put": {"TableName": table, "Item": to_item(item)}}


def outbox_entry(image: dict[str, Any], bus_name: str) -> dict[str, str] | None:
    """The PutEvents entry of an outbox item's stream image; None when the image is not one."""
    if not image.get("outbox", {}).get("BOOL"):
        return None
    detail = image["detail"]["S"]
    json.loads(detail)  # a broken item fails here, not as a refused entry
    return {
        "Source": image["source"]["S"],
        "DetailType": image["detail_type"]["S"],
        "Detail": detail,
        "EventBusName": bus_name,
    }
