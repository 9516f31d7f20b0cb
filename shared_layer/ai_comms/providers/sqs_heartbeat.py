"""Keeps an SQS message invisible while slow work (an AI call) runs, so no second consumer picks it up."""

import threading
from types import TracebackType
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)


def queue_url_from_arn(sqs: Any, arn: str) -> str:
    *_, account, name = arn.split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


class VisibilityHeartbeat:
    """Extends the visibility timeout every `interval` seconds until stopped, in every outcome.

    A failed extension is remembered: the caller must then fail the record rather than finish work
    another consumer may already be repeating.
    """

    def __init__(
        self, sqs: Any, queue_url: str, receipt_handle: str, interval: float, extend_to: int
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._receipt = receipt_handle
        self._interval = interval
        self._extend_to = extend_to
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-heartbeat", daemon=True)
        self.beats = 0
        self.failure: Exception | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url, ReceiptHandle=self._receipt, VisibilityTimeout=self._extend_to
                )
                self.beats += 1
            except Exception as error:  # reported through .failure; the thread must not die silently
                logger.warning("visibility heartbeat failed", extra={"error": type(error).__name__})
                self.failure = error
                return

    def __enter__(self) -> "VisibilityHeartbeat":
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    @property
    def healthy(self) -> bool:
        return self.failure is None
