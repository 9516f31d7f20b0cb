"""The by-tenant-status index stays in step with every status write: each writer of `status` sets the
tenant-status key in the same expression, and every new record is listed from its creation."""

import importlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, get_args

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation, ConversationStatus, PendingReply
from ai_comms.models.events import HandoffRequested
from ai_comms.models.message import Message
from ai_comms.store.conversations import ConversationRepository, TenantRef
from ai_comms.store.outbound_records import OutboundRecords
from ai_comms.store.reply_records import HandOver, LeaseRef, ReplyRecords
from ai_comms.store.retries import reopen

from .apigw import status_event, status_form, twilio_form, webhook_event
from .conftest import CUSTOMER_NUMBER, TABLES, Cloud, webhook
from .lambda_context import FakeContext
from .reply_support import open_conversation

__all__ = ["webhook"]

TENANT = TenantRef("acme", "support")
NOW = "2026-12-01T10:00:00.000Z"


def repository(cloud: Cloud) -> ConversationRepository:
    return ConversationRepository(cloud.dynamodb, TABLES["conversations"])


def listed_under(cloud: Cloud, status: str) -> list[str]:
    return [c.conversation_id for c in repository(cloud).by_status(TENANT, status, 100).conversations]


def assert_indexed(cloud: Cloud, conversation_id: str, status: str) -> None:
    raw = cloud.dynamodb.get_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, conversation_id),
    )["Item"]
    assert raw["status"]["S"] == status
    assert raw["tenant_status"]["S"] == f"acme#support#{status}"
    assert conversation_id in listed_under(cloud, status)
    for other in get_args(ConversationStatus):
        if other != status:
            assert conversation_id not in listed_under(cloud, other), other


def outbound(cloud: Cloud) -> tuple[OutboundRecords, Conversation]:
    records = OutboundRecords(cloud.dynamodb, TABLES["conversations"], TABLES["messages"])
    conversation = Conversation(
        recipient_tel=CUSTOMER_NUMBER,
        conversation_id="out-" + iso(utc_now()),
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        company_address="whatsapp:+14155550100",
        customer_address="whatsapp:" + CUSTOMER_NUMBER,
        status="initiating",
        created_at=NOW,
        updated_at=NOW,
    )
    assert records.create(conversation, {"request_id": "r-1"})
    return records, conversation


def template(conversation_id: str, sid: str) -> Message:
    return Message(
        conversation_id=conversation_id,
        direction="outbound",
        author="template",
        seq=0,
        batch=1,
        sid=sid,
        body="template",
        at=NOW,
    )


def test_a_new_record_is_listed_from_its_creation(cloud: Cloud) -> None:
    conversation = open_conversation(cloud)
    assert_indexed(cloud, conversation.conversation_id, "active")
    assert repository(cloud).get(CUSTOMER_NUMBER, conversation.conversation_id).last_activity_at == (  # type: ignore[union-attr]
        conversation.created_at
    )
    _, requested = outbound(cloud)
    assert_indexed(cloud, requested.conversation_id, "initiating")


def test_a_conversation_the_customer_opens_is_listed(cloud: Cloud, webhook: Any) -> None:
    assert webhook.lambda_handler(webhook_event(twilio_form(Body="hi")), FakeContext())["statusCode"] == 200
    [listed] = repository(cloud).by_status(TENANT, "active", 10).conversations
    stored = repository(cloud).get(CUSTOMER_NUMBER, listed.conversation_id)
    assert stored is not None and stored.opened_by == "customer"
    assert listed.last_activity_at == stored.last_inbound_at


@pytest.mark.parametrize(
    ("steps", "status"),
    [
        (lambda r, c: r.claim(TENANT, c.recipient_tel, c.conversation_id, "k1", 2**40, NOW), "sending"),
        (
            lambda r, c: (
                r.claim(TENANT, c.recipient_tel, c.conversation_id, "k1", 2**40, NOW),
                r.release(TENANT, c.recipient_tel, c.conversation_id, "k1", "twilio 503", NOW),
            ),
            "initiating",
        ),
        (
            lambda r, c: (
                r.claim(TENANT, c.recipient_tel, c.conversation_id, "k1", 2**40, NOW),
                r.withhold(TENANT, c.recipient_tel, c.conversation_id, "k1", "opted out", NOW),
            ),
            "undelivered",
        ),
        (
            lambda r, c: (
                r.claim(TENANT, c.recipient_tel, c.conversation_id, "k1", 2**40, NOW),
                r.complete(
                    TENANT,
                    c.recipient_tel,
                    c.conversation_id,
                    "k1",
                    template(c.conversation_id, "SM1"),
                    {},
                    NOW,
                    1,
                ),
            ),
            "active",
        ),
        (
            lambda r, c: (
                r.claim(TENANT, c.recipient_tel, c.conversation_id, "k1", 2**40, NOW),
                r.close_unknown(
                    TENANT,
                    c.recipient_tel,
                    c.conversation_id,
                    "k1",
                    template(c.conversation_id, "unknown"),
                    "x",
                    NOW,
                    1,
                ),
            ),
            "active",
        ),
        (
            lambda r, c: r.note_error(TENANT, c.recipient_tel, c.conversation_id, "bad", NOW, failed=True),
            "failed",
        ),
    ],
    ids=["claim", "release", "withhold", "complete", "close_unknown", "note_error"],
)
def test_the_senders_writes_keep_the_index(
    cloud: Cloud, steps: Callable[[OutboundRecords, Conversation], Any], status: str
) -> None:
    records, conversation = outbound(cloud)
    steps(records, conversation)
    assert_indexed(cloud, conversation.conversation_id, status)


def _leased(cloud: Cloud) -> tuple[ReplyRecords, LeaseRef, Conversation]:
    conversation = open_conversation(cloud, inbound_seq=1)
    records = ReplyRecords(cloud.dynamodb, TABLES["conversations"], TABLES["messages"])
    lease = LeaseRef(CUSTOMER_NUMBER, conversation.conversation_id, "owner-1", TENANT)
    records.acquire(lease, 0, 2**50)
    return records, lease, conversation


def _handoff_event(conversation: Conversation) -> HandoffRequested:
    return HandoffRequested(
        channel="whatsapp",
        handoff_id=conversation.conversation_id + "#1",
        company_id="acme",
        project_id="support",
        conversation_id=conversation.conversation_id,
        recipient_tel=CUSTOMER_NUMBER,
        customer_address=conversation.customer_address,
        company_address=conversation.company_address,
        upto_seq=1,
        requested_at=NOW,
    )


def test_the_reply_processors_writes_keep_the_index(cloud: Cloud) -> None:
    records, lease, conversation = _leased(cloud)
    pending = PendingReply(upto_seq=1, text="notice", action="handoff", parts=["notice"])
    records.store_pending(lease, pending, NOW, handoff=True)
    assert_indexed(cloud, conversation.conversation_id, "handed_off")

    records, lease, conversation = _leased(cloud)
    hand_over = HandOver("reply_undelivered", "refused:21614", _handoff_event(conversation))
    records.complete(lease, 1, [], NOW, 1, hand_over=hand_over)
    assert_indexed(cloud, conversation.conversation_id, "handed_off")

    records, lease, conversation = _leased(cloud)
    records.close_window(lease, 1, NOW)
    assert_indexed(cloud, conversation.conversation_id, "window_closed")

    records, lease, conversation = _leased(cloud)
    records.mark_failed(lease, "project not found", NOW)
    assert_indexed(cloud, conversation.conversation_id, "failed")


@pytest.fixture
def status_function(cloud: Cloud) -> Any:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    import lambdas.status_callback.handler as module

    return importlib.reload(module)


def test_a_delivery_failure_keeps_the_index(cloud: Cloud, status_function: Any) -> None:
    template_failed = open_conversation(cloud, inbound_seq=0)
    event = status_event(
        status_form("SM" + "1" * 32, "failed", 63024),
        {"c": template_failed.conversation_id, "p": "0" * 10 + "#out#" + "0" * 13 + "#000"},
    )
    assert status_function.lambda_handler(event, FakeContext())["statusCode"] == 200
    assert_indexed(cloud, template_failed.conversation_id, "undelivered")

    reply_failed = open_conversation(cloud, inbound_seq=2, answered_seq=2)
    position = "0000000002#out#" + "0" * 13 + "#000"
    event = status_event(
        status_form("SM" + "2" * 32, "undelivered", 63016), {"c": reply_failed.conversation_id, "p": position}
    )
    assert status_function.lambda_handler(event, FakeContext())["statusCode"] == 200
    assert_indexed(cloud, reply_failed.conversation_id, "handed_off")


def test_handback_and_close_keep_the_index(cloud: Cloud) -> None:
    conversation = open_conversation(cloud, status="handed_off", handoff_to_human=True, inbound_seq=3)
    back = repository(cloud).hand_back(conversation, NOW, 0)
    assert_indexed(cloud, conversation.conversation_id, "active")
    repository(cloud).close(back, NOW, 0)
    assert_indexed(cloud, conversation.conversation_id, "closed")


def test_the_lifecycles_own_writes_keep_the_index(cloud: Cloud) -> None:
    # handback from ignored (models.lifecycle "handback") and ops conversation retry's reopen.
    ignored = open_conversation(cloud, status="ignored", inbound_seq=2)
    repository(cloud).hand_back(ignored, NOW, 0)
    assert_indexed(cloud, ignored.conversation_id, "active")
    failed = open_conversation(cloud, status="failed", inbound_seq=2, answered_seq=1)
    reopened = reopen(cloud.dynamodb, TABLES["conversations"], failed, 1, NOW, 0)
    assert reopened.status == "active"
    assert_indexed(cloud, failed.conversation_id, "active")


def test_a_customer_writing_again_keeps_the_index(cloud: Cloud, webhook: Any) -> None:
    returned = open_conversation(cloud, status="window_closed", inbound_seq=1, answered_seq=1)
    assert webhook.lambda_handler(webhook_event(twilio_form(Body="back")), FakeContext())["statusCode"] == 200
    assert_indexed(cloud, returned.conversation_id, "active")


def test_an_idle_close_keeps_the_index(cloud: Cloud, webhook: Any) -> None:
    idle = open_conversation(
        cloud, last_activity_at="2026-01-01T00:00:00.000Z", inbound_seq=1, answered_seq=1
    )
    assert webhook.lambda_handler(webhook_event(twilio_form(Body="hi")), FakeContext())["statusCode"] == 200
    assert_indexed(cloud, idle.conversation_id, "closed")
    [opened] = repository(cloud).by_status(TENANT, "active", 10).conversations
    assert opened.conversation_id != idle.conversation_id


def test_the_list_reads_the_latest_activity_first_and_a_message_moves_a_conversation_up(
    cloud: Cloud, webhook: Any
) -> None:
    # Within the project's idle limit (168 hours): an idle one would be closed by the next message.
    earlier, later = iso(utc_now() - timedelta(hours=2)), iso(utc_now() - timedelta(hours=1))
    older = open_conversation(cloud, last_activity_at=earlier)
    time.sleep(0.002)  # its id is its creation time
    newer = open_conversation(cloud, last_activity_at=later)
    assert [
        c for c in listed_under(cloud, "active") if c in {older.conversation_id, newer.conversation_id}
    ] == [
        newer.conversation_id,
        older.conversation_id,
    ]
    # The customer writes in the older one (the webhook joins the newest open, so close the other).
    repository(cloud).close(newer, NOW, 0)
    assert (
        webhook.lambda_handler(webhook_event(twilio_form(Body="still there?")), FakeContext())["statusCode"]
        == 200
    )
    page = repository(cloud).by_status(TENANT, "active", 1)
    assert [c.conversation_id for c in page.conversations] == [older.conversation_id]
    assert page.conversations[0].last_activity_at > later
    assert repository(cloud).by_status(TenantRef("other", "support"), "active", 10).conversations == []


def test_a_conversation_is_found_by_its_id_alone(cloud: Cloud) -> None:
    conversation = open_conversation(cloud)
    [found] = repository(cloud).find(conversation.conversation_id)
    assert found.recipient_tel == CUSTOMER_NUMBER and found.conversation_id == conversation.conversation_id
    assert repository(cloud).find("no-such-id") == []
