"""One-time claims in the idempotency table: "this Twilio MessageSid was accepted".

A claim is written in the same transaction as the message it guards, so a message is recorded at
most once however often Twilio retries it, and a failed write leaves no claim behind. Claims live
beside Powertools' idempotency records (their own key prefix) and expire with the table's TTL.
"""

from typing import Any

DEDUPE_SECONDS = 7 * 24 * 3600


class Claims:
    def __init__(self, table: str, prefix: str) -> None:
        self.table = table
        self._prefix = prefix

    def key(self, name: str) -> dict[str, Any]:
        return {"id": {"S": f"{self._prefix}#{name}"}}

    def claim_request(self, name: str, now: int, owner: str) -> dict[str, Any]:
        """A transaction item taking the claim; it fails while an unexpired claim holds the name."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **self.key(name),
                    "expiration": {"N": str(now + DEDUPE_SECONDS)},
                    "owner": {"S": owner},
                },
                "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
        }
