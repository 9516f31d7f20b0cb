"""The reply processor when OpenAI, Twilio, DynamoDB or SQS fail: no lost reply, no duplicate, no loop."""

import json
import logging
import time
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from ai_comms import pausing
from ai_comms.clock import utc_now
from ai_comms.critical import POST_SEND_EVENT
from ai_comms.models.message import UNKNOWN_SID
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.reply_records import ReplyRecords
from ai_comms.store.tenant_pauses import TenantPauses

from .conftest import CUSTOMER_NUMBER, TABLES, demo_project
from .reply_support import FAST_RETRY, Replies, allow_long_replies, fakes, replies

__all__ = ["fakes", "replies"]


def dynamodb_down(*_: Any, **__: Any) -> None:
    raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")


def with_dlq(replies: Replies) -> str:
    dlq = replies.cloud.sqs.create_queue(QueueName="q-ai_reply-dlq")["QueueUrl"]
    arn = replies.cloud.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    replies.cloud.sqs.set_queue_attributes(
        QueueUrl=replies.queue_url,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})},
    )
    return str(dlq)


def test_openai_500_twice_then_ok_gives_exactly_one_reply(replies: Replies) -> None:
    replies.openai.add_faults({"status": 500, "count": 2, "headers": FAST_RETRY})
    replies.customer_says("hello")
    assert replies.deliver() == []
    # The faults hit the first call (creating the AI conversation); the SDK's retries absorb them.
    assert [(c["path"], c["status"]) for c in replies.openai.requests.snapshot()] == [
        ("/v1/conversations", 500),
        ("/v1/conversations", 500),
        ("/v1/conversations", 200),
        ("/v1/responses", 200),
    ]
    assert len(replies.sent()) == 1


def test_openai_down_beyond_sdk_retries_fails_the_record_then_the_retry_replies_once(
    replies: Replies,
) -> None:
    replies.openai.add_faults({"status": 503, "count": 3, "headers": FAST_RETRY})
    replies.customer_says("hello")
    service = replies.handler.service
    with mock.patch.object(
        service._sqs, "change_message_visibility", wraps=service._sqs.change_message_visibility
    ) as vis:
        assert len(replies.deliver()) == 1
    assert vis.call_args.kwargs["VisibilityTimeout"] == 10
    stored = replies.stored()
    assert stored.pending_reply is None and stored.lease_owner is None and stored.status == "active"
    assert replies.sent() == []

    replies.make_visible()
    assert replies.deliver() == []
    assert len(replies.sent()) == 1 and len(replies.ai_calls()) == 1
    assert len(replies.openai.requests.snapshot()) == 5


def test_retry_backoff_grows_with_the_receive_count(replies: Replies) -> None:
    from ai_comms.replies.record import QueuedRecord

    def record(count: int) -> QueuedRecord:
        return QueuedRecord("m", "r", "arn:aws:sqs:eu-west-1:123456789012:q", count, "req", lambda: 1000)

    delays = [replies.handler.service.retry_delay(record(n)) for n in (1, 2, 3, 12)]
    assert delays == [10, 20, 40, 900]


def test_a_request_openai_refuses_hands_the_conversation_to_a_person_without_a_retry(
    replies: Replies,
) -> None:
    dlq = with_dlq(replies)
    # https://platform.openai.com/docs/guides/error-codes: a 400 invalid_request_error names the
    # parameter it refuses; asking again the same way gets the same answer.
    refusal = {"status": 400, "type": "invalid_request_error", "code": "unsupported_value", "param": "model"}
    replies.openai.script({"error": {**refusal, "message": "The model does not exist."}})
    replies.customer_says("hello")

    assert replies.deliver() == []
    notice = demo_project().channels["whatsapp"].handoff_notice
    assert [m["body"] for m in replies.sent()] == [notice]
    stored = replies.stored()
    assert stored.status == "handed_off" and stored.handoff_to_human and stored.lease_owner is None
    assert (
        stored.handoff_reason == "ai_unanswerable"
        and stored.handoff_detail == "refused:400/unsupported_value"
    )
    assert len(replies.ai_calls()) == 1
    [event] = replies.queued("handoff")
    assert event["detail"]["reason"] == "ai_unanswerable"
    assert replies.cloud.sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []


def test_twilio_500_once_gives_exactly_one_reply_and_one_ai_call(replies: Replies) -> None:
    replies.twilio.add_faults({"status": 500, "count": 1})
    replies.customer_says("hello")

    assert len(replies.deliver()) == 1
    pending = replies.stored().pending_reply
    assert pending is not None and pending.sent_sids == [] and pending.text == "Thanks! You said: hello"
    assert pending.attempted == 0  # certainly not sent: the marker is cleared so the retry sends

    replies.make_visible()
    assert replies.deliver() == []
    assert len(replies.sent()) == 1 and len(replies.ai_calls()) == 1
    stored = replies.stored()
    assert stored.pending_reply is None and stored.answered_seq == 1


def test_a_retry_sends_only_the_parts_twilio_has_not_accepted(replies: Replies) -> None:
    text = ("A sentence of a long answer. " * 60).strip()
    replies.openai.script({"text": text, "action": "none"})
    replies.customer_says("long please")
    calls: list[str] = []
    original = replies.handler.service._delivery._twilio.send_text

    def first_ok_then_down(*args: Any, **kwargs: Any) -> str:
        calls.append(args[-1])
        if len(calls) == 2:
            from ai_comms.providers.twilio_client import SendFailed

            raise SendFailed("down", permanent=False)
        return str(original(*args, **kwargs))

    with mock.patch.object(
        replies.handler.service._delivery._twilio, "send_text", side_effect=first_ok_then_down
    ):
        assert len(replies.deliver()) == 1
    pending = replies.stored().pending_reply
    assert pending is not None and len(pending.parts) == 2 and len(pending.sent_sids) == 1
    assert pending.attempted == 1

    replies.make_visible()
    assert replies.deliver() == []
    bodies = [m["body"] for m in replies.sent()]
    assert bodies == pending.parts and len(replies.ai_calls()) == 1


def test_twilio_refusing_a_reply_for_good_hands_the_conversation_to_a_person(replies: Replies) -> None:
    replies.twilio.add_faults({"status": 400, "count": 1})
    replies.customer_says("hello")
    assert replies.deliver() == []
    stored = replies.stored()
    assert stored.handoff_to_human and stored.status == "handed_off" and stored.answered_seq == 1
    assert stored.handoff_reason == "reply_undelivered" and stored.handoff_detail == "refused:20400"
    [event] = replies.queued("handoff")  # through the outbox, with the final write
    assert event["detail"]["reason"] == "reply_undelivered" and event["detail-type"] == "HandoffRequested"
    replies.make_visible()
    assert replies.deliver() == []
    assert len(replies.ai_calls()) == 1 and replies.sent() == []


def test_a_recipient_who_blocked_the_sender_is_recorded_opted_out_and_sent_nothing_more(
    replies: Replies,
) -> None:
    replies.twilio.refuse(21610)
    replies.customer_says("hello")
    assert replies.deliver() == []
    consent = ConsentRepository(replies.cloud.dynamodb, TABLES["consent"]).get(
        replies.conversation.company_address, replies.conversation.customer_address
    )
    assert consent is not None and consent.state == "opted_out" and consent.change.source == "blocked"
    stored = replies.stored()
    assert stored.answered_seq == 1 and stored.pending_reply is None and not stored.handoff_to_human

    replies.customer_says("anyone?")
    assert replies.deliver() == []
    assert len(replies.ai_calls()) == 1 and replies.sent() == []


def test_final_update_failing_after_the_send_logs_critical_and_is_not_retried(
    replies: Replies, caplog: pytest.LogCaptureFixture
) -> None:
    replies.customer_says("hello")
    with caplog.at_level(logging.CRITICAL), mock.patch.object(ReplyRecords, "complete", dynamodb_down):
        assert replies.deliver() == []
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1 and getattr(critical[0], "critical_event", None) == POST_SEND_EVENT
    assert len(replies.sent()) == 1

    # Even a redelivery of the same message sends nothing more.
    replies.customer_says()
    assert replies.deliver() == []
    assert len(replies.sent()) == 1


def expire_lease(replies: Replies) -> None:
    """As when the holder's invocation has ended: its lease is past its end."""
    past = int((utc_now() - timedelta(seconds=1)).timestamp() * 1000)
    replies.cloud.dynamodb.update_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, replies.conversation.conversation_id),
        UpdateExpression="SET lease_until = :u",
        ExpressionAttributeValues={":u": {"N": str(past)}},
    )


def critical_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.CRITICAL]


def test_recording_a_sent_sid_failing_logs_critical_and_stops_and_is_never_resent(
    replies: Replies, caplog: pytest.LogCaptureFixture
) -> None:
    allow_long_replies(replies.cloud)
    replies.openai.script({"text": ("Sentence here. " * 200).strip(), "action": "none"})
    replies.customer_says("hello")
    real = ReplyRecords.record_progress
    calls: list[int] = []

    def second_write_fails(self: ReplyRecords, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # the write after part 1 went out: it would store that part's sid
            dynamodb_down()
        real(self, *args)

    with (
        caplog.at_level(logging.CRITICAL),
        mock.patch.object(ReplyRecords, "record_progress", second_write_fails),
    ):
        assert replies.deliver() == []
    assert len(critical_records(caplog)) == 1
    [first] = replies.sent()
    pending = replies.stored().pending_reply
    assert pending is not None and pending.sent_sids == [] and pending.attempted == 1

    # The next message takes the expired lease and resumes the pending reply: part 1 was attempted
    # without a stored sid, so it is logged CRITICAL and skipped, never sent twice.
    expire_lease(replies)
    replies.customer_says("more")
    with caplog.at_level(logging.CRITICAL):
        assert replies.deliver() == []
    sent = replies.sent()
    assert [m["body"] for m in sent] == [*pending.parts, "Thanks! You said: more"]
    assert sent[0]["sid"] == first["sid"]
    assert len(critical_records(caplog)) == 2
    stored = replies.stored()
    assert stored.pending_reply is None and stored.answered_seq == 2
    assert [m.sid for m in replies.history() if m.direction == "outbound"] == [
        UNKNOWN_SID,
        sent[1]["sid"],
        sent[2]["sid"],
    ]


def test_a_failed_final_write_is_not_resent_by_the_customers_next_message(
    replies: Replies, caplog: pytest.LogCaptureFixture
) -> None:
    replies.customer_says("hello")
    with caplog.at_level(logging.CRITICAL), mock.patch.object(ReplyRecords, "complete", dynamodb_down):
        assert replies.deliver() == []
    assert len(critical_records(caplog)) == 1 and len(replies.sent()) == 1

    expire_lease(replies)
    replies.customer_says("second")
    with caplog.at_level(logging.CRITICAL):
        assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == [
        "Thanks! You said: hello",
        "Thanks! You said: second",
    ]
    [_, unknown] = critical_records(caplog)
    assert getattr(unknown, "critical_event", None) == POST_SEND_EVENT
    assert getattr(unknown, "error_type", None) == "SendOutcomeUnknown"
    stored = replies.stored()
    assert stored.answered_seq == 2 and stored.pending_reply is None and stored.lease_owner is None
    assert [m.sid for m in replies.history() if m.direction == "outbound"] == [
        UNKNOWN_SID,
        replies.sent()[1]["sid"],
    ]


def test_a_twilio_read_timeout_is_critical_and_never_resent(
    replies: Replies, caplog: pytest.LogCaptureFixture
) -> None:
    # Past the 2 s client timeout, then the fake accepts the message anyway: Twilio accepted it late.
    replies.twilio.add_faults({"delay_seconds": 2.5, "count": 1})
    replies.customer_says("hello")
    with caplog.at_level(logging.CRITICAL):
        assert replies.deliver() == []
    [critical] = critical_records(caplog)
    assert getattr(critical, "critical_event", None) == POST_SEND_EVENT
    assert getattr(critical, "error_type", None) == "SendOutcomeUnknown"
    stored = replies.stored()
    assert stored.answered_seq == 1 and stored.pending_reply is None and stored.status == "active"
    assert [m.sid for m in replies.history() if m.direction == "outbound"] == [UNKNOWN_SID]

    replies.make_visible()  # nothing failed, so nothing comes back
    assert replies.deliver() == []
    deadline = time.monotonic() + 5
    while not replies.sent() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(replies.sent()) == 1 and len(replies.twilio.requests.snapshot()) == 1


def test_a_failed_heartbeat_fails_the_record_before_anything_is_sent(replies: Replies) -> None:
    replies.openai.set_latency(0.6)
    replies.customer_says("hello")
    with mock.patch.object(
        replies.handler.service._sqs, "change_message_visibility", side_effect=dynamodb_down
    ):
        assert len(replies.deliver()) == 1
    assert replies.sent() == []
    stored = replies.stored()
    assert stored.pending_reply is None and stored.lease_owner is None


def test_the_heartbeat_extends_visibility_while_the_ai_is_slow(replies: Replies) -> None:
    replies.openai.set_latency(0.7)
    replies.customer_says("hello")
    service = replies.handler.service
    with mock.patch.object(
        service._sqs, "change_message_visibility", wraps=service._sqs.change_message_visibility
    ) as vis:
        assert replies.deliver() == []
    assert vis.call_count >= 2
    assert all(c.kwargs["VisibilityTimeout"] == 30 for c in vis.call_args_list)


def test_a_handoff_whose_event_failed_is_published_by_the_retry_without_a_second_notice(
    replies: Replies,
) -> None:
    replies.openai.script({"text": "A human will help.", "action": "handoff"})
    replies.customer_says("human please")
    publisher = replies.handler.service._delivery._publisher
    failure = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
    with mock.patch.object(publisher._events, "put_events", return_value=failure):
        assert len(replies.deliver()) == 1
    assert replies.stored().handoff_to_human

    replies.make_visible()
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == [demo_project().channels["whatsapp"].handoff_notice]
    assert len(replies.queued("handoff")) == 1
    assert len(replies.ai_calls()) == 1


def test_a_missing_openai_secret_is_retried_not_failed(replies: Replies) -> None:
    import boto3

    boto3.client("secretsmanager", region_name="eu-west-1").delete_secret(
        SecretId="t/tenants/acme/openai", ForceDeleteWithoutRecovery=True
    )
    replies.customer_says("hello")
    assert len(replies.deliver()) == 1
    assert replies.stored().status == "active"


def test_a_rotated_openai_key_is_read_again_and_the_reply_arrives(replies: Replies) -> None:
    replies.openai.add_faults({"status": 401, "count": 1})
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Thanks! You said: hello"]


def test_a_key_openai_keeps_refusing_pauses_the_tenant_until_it_works_again(
    replies: Replies, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pausing, "MAX_SQS_DELAY_SECONDS", 0)  # parked copies visible at once
    replies.openai.add_faults({"status": 401, "count": 2})
    replies.customer_says("hello")
    assert replies.deliver() == []  # parked, not failed: no receive counts towards the DLQ
    stored = replies.stored()
    assert stored.status == "active" and stored.lease_owner is None and stored.answered_seq == 0
    out = capsys.readouterr().out
    assert '"TenantCredentialErrors"' in out and '"TenantPauses"' in out
    pauses = TenantPauses(replies.cloud.dynamodb, TABLES["company"])
    pause = pauses.get("acme", "support")
    assert pause is not None and pause.reason == "openai_key_refused" and pause.count == 1

    # While paused, the parked record waits without asking OpenAI.
    calls = len(replies.ai_calls())
    assert replies.deliver() == [] and len(replies.ai_calls()) == calls and replies.sent() == []

    # Once the pause is over, the next attempt is the probe: it works and lifts the pause.
    end_pause(replies)
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Thanks! You said: hello"]
    assert pauses.get("acme", "support") is None


def end_pause(replies: Replies) -> None:
    replies.cloud.dynamodb.update_item(
        TableName=TABLES["company"],
        Key=TenantPauses.key("acme", "support"),
        UpdateExpression="SET until_ms = :past",
        ExpressionAttributeValues={":past": {"N": "0"}},
    )


def test_rotated_twilio_credentials_are_read_again_and_the_reply_goes_out_once(replies: Replies) -> None:
    replies.twilio.add_faults({"status": 401, "count": 1})
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert len(replies.sent()) == 1 and len(replies.ai_calls()) == 1
