"""The Lambda SQS event source mapping, played by a few polling threads per enabled mapping.

Semantics kept from the service: batches of up to min(BatchSize, 10) messages, the real SQS event
shape, successful messages deleted, a failed invocation deletes nothing (the messages reappear after
the visibility timeout and the queue's redrive policy moves them to the DLQ), and with
ReportBatchItemFailures only the reported items stay. Several batches run at once: Lambda polls a
queue with several pollers and scales them with the backlog, up to the function's concurrency.
Here one lead thread always long-polls, and up to ``concurrency - 1`` helpers join while receives
keep finding messages (each helper goes back to sleep when its receive comes back empty), so an
idle queue costs the single-process emulator one request a second, not one per thread. A thread
whose function has no free execution environment waits for one while its batch stays in flight.
The mapping's FilterCriteria apply to each message (its body as JSON when it is a JSON object):
messages no filter matches are deleted without an invoke, as Lambda does. Not kept: batching
windows.

moto quirk (5.2.5): while a mapping is enabled in the emulator, every message sent to its queue makes
moto itself receive the oldest visible messages (up to BatchSize) and try to run the function in
Docker; without Docker that fails and moto makes them visible again, but their
ApproximateReceiveCount has gone up. Under load, a message waiting for a poller is received that
way once per newer message and reaches the DLQ without any handler seeing it. So the runner
disables the mappings it plays in the emulator while it runs (and enables them again on stop):
receive counts then match AWS, where only the service's pollers receive.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from local_cloud.discovery import MappingRecord
from local_cloud.event_filter import sqs_filter_view
from local_cloud.polling import Invoke, MappingPoller

# Short long-polls keep shutdown quick while still not spinning on an empty queue.
WAIT_SECONDS = 1
BACKLOG = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)
_LAMBDA_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)


def queue_url_for(sqs: Any, queue_arn: str) -> str:
    _, _, _, _, account, name = queue_arn.split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    # Lambda spells SQS message attributes in camelCase and always lists the (unused) list fields.
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One element of the ``Records`` list Lambda passes for an SQS batch."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: attributes[name] for name in _LAMBDA_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def messages_to_delete(
    messages: list[dict[str, Any]], invocation: Any, report_batch_item_failures: bool
) -> list[dict[str, Any]]:
    """Which messages the service would delete after this invocation."""
    if invocation.error is not None:
        return []
    if not report_batch_item_failures:
        return messages
    result = invocation.result
    if result is None:
        return messages
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    if failures is None:
        return messages
    ids = {message["MessageId"] for message in messages}
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            # Lambda treats a malformed or unknown identifier as a failure of the whole batch.
            return []
        failed.add(identifier)
    return [message for message in messages if message["MessageId"] not in failed]


class SqsPoller(MappingPoller):
    """``concurrency`` daemon threads feeding one queue to one function until ``stop``."""

    def __init__(
        self,
        mapping: MappingRecord,
        sqs: Any,
        region: str,
        invoke: Invoke,
        concurrency: int = 1,
    ) -> None:
        name = mapping.source_arn.rsplit(":", 1)[1]
        super().__init__(mapping, invoke, f"sqs-{name}", threads=concurrency)
        self._sqs = sqs
        self._region = region
        self._queue_url = queue_url_for(sqs, mapping.source_arn)
        # Set while receives find messages: the helpers poll only then.
        self._backlog = threading.Event()

    def stop(self) -> None:
        super().stop()
        self._backlog.set()  # wake the sleeping helpers so they see the stop

    def wait_for_turn(self) -> bool:
        if not self.is_lead:
            self._backlog.wait()
        return super().wait_for_turn()

    def polled(self, received: int) -> None:
        if received:
            self._backlog.set()
        elif not self.is_lead:
            self._backlog.clear()

    def backlog(self) -> int:
        """What the queue holds: visible, delayed, and received but not yet deleted (in flight or
        waiting out a visibility timeout before a retry); SQS's approximate counts."""
        answer = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=list(BACKLOG))
        return sum(int(answer["Attributes"].get(name, 0)) for name in BACKLOG)

    def poll_once(self) -> int:
        """Receive one batch and process it; return how many messages it held."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        if not messages:
            return 0
        records = {m["MessageId"]: sqs_record(m, self.mapping.source_arn, self._region) for m in messages}
        accepts = self.mapping.filters.accepts
        wanted = [m for m in messages if accepts(sqs_filter_view(records[m["MessageId"]]))]
        done = [m for m in messages if m not in wanted]
        if wanted:
            invocation = self.invoke({"Records": [records[m["MessageId"]] for m in wanted]})
            done += messages_to_delete(wanted, invocation, self.mapping.report_batch_item_failures)
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(chunk)
                ],
            )
        return len(messages)
