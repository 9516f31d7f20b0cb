"""Tenant pauses: a tenant-wide failure (its OpenAI key or Twilio credentials refused even after a
fresh read, its OpenAI quota used up) pauses that project's processing instead of failing its
conversations one by one.

One small item per paused project in the company-data table (partition ``pause#<company>``, sort
key the project; never read by a project listing): until when it is paused, why, and how many
pauses in a row. Each pause doubles the last, from ``first_seconds`` (one minute by default) to
fifteen minutes. Work that finds the
project paused waits for the pause to end without calling the vendor; the first attempt after it
ends is the probe: its success lifts the pause, its failure pauses again for longer.
"""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.store.dynamo import condition_failed

PAUSE_KEY_PREFIX = "pause#"
FIRST_PAUSE_SECONDS = 60
LONGEST_PAUSE_SECONDS = 900


@dataclass(frozen=True)
class Pause:
    until_ms: int
    reason: str
    count: int

    def remaining_seconds(self, now_ms: int) -> int:
        return max(0, -(-(self.until_ms - now_ms) // 1000))


class TenantPauses:
    def __init__(self, dynamodb: Any, table: str, first_seconds: int = FIRST_PAUSE_SECONDS) -> None:
        self._db = dynamodb
        self._table = table
        self._first_seconds = first_seconds

    @staticmethod
    def key(company_id: str, project_id: str) -> dict[str, Any]:
        return {"company_id": {"S": PAUSE_KEY_PREFIX + company_id}, "project_id": {"S": project_id}}

    def get(self, company_id: str, project_id: str) -> Pause | None:
        item = self._db.get_item(TableName=self._table, Key=self.key(company_id, project_id)).get("Item")
        if not item:
            return None
        return Pause(int(item["until_ms"]["N"]), item["reason"]["S"], int(item["pauses"]["N"]))

    def pause(self, company_id: str, project_id: str, reason: str, now_ms: int) -> Pause:
        """Pause (or pause again, for twice as long); the pause as stored now."""
        current = self.get(company_id, project_id)
        count = (current.count if current else 0) + 1
        seconds = min(self._first_seconds * 2 ** (count - 1), LONGEST_PAUSE_SECONDS)
        until = now_ms + seconds * 1000
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self.key(company_id, project_id),
                # Several workers may fail at once: the pause that ends last wins.
                UpdateExpression=(
                    "SET until_ms = :until, reason = :reason, pauses = :count, item_type = :type"
                ),
                ConditionExpression="attribute_not_exists(until_ms) OR until_ms < :until",
                ExpressionAttributeValues={
                    ":until": {"N": str(until)},
                    ":reason": {"S": reason[:300]},
                    ":count": {"N": str(count)},
                    ":type": {"S": "pause"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            stored = self.get(company_id, project_id)
            return stored or Pause(until, reason, count)
        attributes = answer["Attributes"]
        return Pause(
            int(attributes["until_ms"]["N"]), attributes["reason"]["S"], int(attributes["pauses"]["N"])
        )

    def lift(self, company_id: str, project_id: str) -> bool:
        """End the pause after a success; False when there was none."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self.key(company_id, project_id),
                ConditionExpression="attribute_exists(until_ms)",
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True
