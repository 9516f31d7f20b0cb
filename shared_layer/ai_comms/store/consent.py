"""The consent table: PK company_address, SK customer_address for the current state; each change is
also an item of its own (SK "<customer_address>#<at>#<what>"), so the state item stays small and
one Query of a company address returns its customers' states and histories for an export.

A change is conditional on the state being different, so a repeated keyword changes nothing and
leaves no second history entry; the webhook writes a keyword's change in the same transaction as
the message that carries it.
"""

from collections.abc import Iterator
from typing import Any

from ai_comms.models.consent import Consent, ConsentChange, ConsentState
from ai_comms.models.conversation import Conversation
from ai_comms.store.dynamo import TransactionCancelled, from_item, to_item, to_value, transact_write

HISTORY_SEPARATOR = "#"


class ConsentRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    @staticmethod
    def key(company_address: str, customer_address: str) -> dict[str, Any]:
        return {"company_address": {"S": company_address}, "customer_address": {"S": customer_address}}

    def get(self, company_address: str, customer_address: str) -> Consent | None:
        answer = self._db.get_item(
            TableName=self.table, Key=self.key(company_address, customer_address), ConsistentRead=True
        )
        if "Item" not in answer:
            return None
        return Consent.model_validate(from_item(answer["Item"]))

    def is_opted_out(self, company_address: str, customer_address: str) -> bool:
        """The check before every send: one strongly consistent GetItem of the state alone."""
        answer = self._db.get_item(
            TableName=self.table,
            Key=self.key(company_address, customer_address),
            ConsistentRead=True,
            ProjectionExpression="#state",
            ExpressionAttributeNames={"#state": "state"},
        )
        return bool(answer.get("Item", {}).get("state", {}).get("S") == "opted_out")

    def change_requests(
        self,
        company_address: str,
        customer_address: str,
        company_id: str,
        project_id: str,
        change: ConsentChange,
    ) -> list[dict[str, Any]]:
        """Transaction items moving the state to `change.state` with its history entry. They fail
        (ConditionalCheckFailed on the first) when the state is that already: opting in needs an
        opted-out customer, since a customer never asked is opted in."""
        values: dict[str, Any] = {
            ":state": {"S": change.state},
            ":at": {"S": change.at},
            ":change": to_value(change.model_dump(exclude_none=True)),
            ":company": {"S": company_id},
            ":project": {"S": project_id},
        }
        if change.state == "opted_out":
            condition = "attribute_not_exists(#state) OR #state <> :state"
        else:
            condition = "#state = :out"
            values[":out"] = {"S": "opted_out"}
        what = change.message_sid or change.operator or change.source
        history = to_item(
            {
                "company_address": company_address,
                "customer_address": HISTORY_SEPARATOR.join((customer_address, change.at, what)),
                "item_type": "consent_change",
                "customer": customer_address,
                **change.model_dump(exclude_none=True),
            }
        )
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self.key(company_address, customer_address),
                    "UpdateExpression": (
                        "SET #state = :state, changed_at = :at, #change = :change, company_id = :company, "
                        "project_id = :project, item_type = :type"
                    ),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": {"#state": "state", "#change": "change"},
                    "ExpressionAttributeValues": {**values, ":type": {"S": "consent"}},
                }
            },
            {"Put": {"TableName": self.table, "Item": history}},
        ]

    def record_blocked(self, conversation: Conversation, code: int | None, at: str) -> bool:
        """Twilio refused a send in ``conversation`` because the customer blocked the sender (21610):
        recorded as their consent with the tenant's number (``ConsentChange.blocked``)."""
        return self.change(
            conversation.company_address,
            conversation.customer_address,
            conversation.company_id,
            conversation.project_id,
            ConsentChange.blocked(code, conversation.conversation_id, at),
        )

    def change(
        self,
        company_address: str,
        customer_address: str,
        company_id: str,
        project_id: str,
        change: ConsentChange,
    ) -> bool:
        """Apply a change on its own (an operator, a blocked sender); False when the state was it already."""
        try:
            transact_write(
                self._db,
                self.change_requests(company_address, customer_address, company_id, project_id, change),
            )
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                return False
            raise
        return True

    def of_address(self, company_address: str, with_history: bool = True) -> Iterator[Consent]:
        """Every customer's consent for one company address (an export), with the history of each."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "company_address = :a",
            "ExpressionAttributeValues": {":a": {"S": company_address}},
            "ConsistentRead": True,
        }
        current: dict[str, Any] | None = None
        changes: list[ConsentChange] = []
        while True:
            page = self._db.query(**kwargs)
            for raw in page.get("Items", []):
                data = from_item(raw)
                if data.get("item_type") == "consent_change":
                    if (
                        with_history
                        and current is not None
                        and data.get("customer") == current["customer_address"]
                    ):
                        changes.append(ConsentChange.model_validate(data))
                    continue
                if current is not None:
                    yield Consent.model_validate({**current, "history": changes})
                current, changes = data, []
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if current is not None:
            yield Consent.model_validate({**current, "history": changes})


def state_of(consent: Consent | None) -> ConsentState:
    """A customer never asked is opted in."""
    return consent.state if consent is not None else "opted_in"
