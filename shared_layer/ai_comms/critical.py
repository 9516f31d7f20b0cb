"""The one log line for "a message went out but its record could not be saved".

Retrying such work would send the message twice, so it is logged once, counted by the CloudWatch
metric filter declared in Terraform (modules/monitoring), alarmed, and the work is not retried.
The filter matches level CRITICAL and this event name; keep both in step with the Terraform pattern.
"""

from typing import Any

from aws_lambda_powertools import Logger

POST_SEND_EVENT = "post_send_update_failed"


def log_post_send_failure(logger: Logger, error: BaseException, **ids: Any) -> None:
    logger.critical(
        "message sent but its record was not updated; not retried to avoid a duplicate",
        extra={"critical_event": POST_SEND_EVENT, "error_type": type(error).__name__, **ids},
    )
