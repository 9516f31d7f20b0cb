"""Consent: keywords as customers type them, the state kept per customer and company address."""

from typing import Any

import pytest

from ai_comms.consent.keywords import keyword_of
from ai_comms.models.tenant import ConsentPolicy
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import ConversationRepository

from .apigw import twilio_form, webhook_event
from .conftest import COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, Cloud, history
from .lambda_context import FakeContext
from .test_webhook import open_conversation

DEFAULT = ConsentPolicy()


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOP!!",
        "\tstop\n",
        "S.T.O.P",
        "Stopall",
        "unsubscribe",
        "Cancel",
        "END",
        "quit",
        "OptOut",
        "REVOKE",
        "stop 🙏",
    ],
)
def test_a_message_that_is_only_an_opt_out_keyword_opts_out(body: str) -> None:
    assert keyword_of(body, DEFAULT) == "opt_out"


@pytest.mark.parametrize("body", ["START", "start!", " unstop "])
def test_start_and_unstop_opt_back_in(body: str) -> None:
    assert keyword_of(body, DEFAULT) == "opt_in"


@pytest.mark.parametrize(
    "body",
    [
        "please stop",
        "stop sending me this",
        "Don't stop",
        "STOP ALL",
        "stopp",
        "",
        "   ",
        "stop" * 40,
        "the end",
    ],
)
def test_sentences_containing_a_keyword_are_ordinary_messages(body: str) -> None:
    assert keyword_of(body, DEFAULT) is None


def test_a_project_sets_its_own_keywords() -> None:
    policy = ConsentPolicy(opt_out_keywords=["halt", "Arrêt"], opt_in_keywords=["resume"])
    assert keyword_of("Halt.", policy) == "opt_out" and keyword_of("ARRÊT", policy) == "opt_out"
    assert keyword_of("STOP", policy) is None and keyword_of("resume", policy) == "opt_in"
    with pytest.raises(ValueError, match="without spaces"):
        ConsentPolicy(opt_out_keywords=["stop now"])
    with pytest.raises(ValueError, match="both opt out and opt in"):
        ConsentPolicy(opt_out_keywords=["STOP"], opt_in_keywords=["stop"])


def _say(webhook: Any, body: str) -> dict[str, str]:
    form = twilio_form(Body=body)
    assert webhook.lambda_handler(webhook_event(form), FakeContext())["statusCode"] == 200
    return form


def _consent(cloud: Cloud) -> Any:
    return ConsentRepository(cloud.dynamodb, TABLES["consent"]).get(
        "whatsapp:" + COMPANY_NUMBER, "whatsapp:" + CUSTOMER_NUMBER
    )


def test_the_webhook_records_an_opt_out_with_the_message_and_routes_its_confirmation(
    cloud: Cloud, webhook: Any
) -> None:
    conversation = open_conversation(cloud, handoff_to_human=True, status="handed_off")
    form = _say(webhook, "Stop.")

    consent = _consent(cloud)
    assert consent.state == "opted_out" and consent.company_id == "acme"
    assert (consent.change.source, consent.change.keyword, consent.change.message_sid) == (
        "keyword",
        "STOP",
        form["MessageSid"],
    )
    [message] = history(cloud, conversation.conversation_id)
    assert message.consent_change == "opt_out"
    # With a person: the message goes to them, and its event says consent changed (the rule that
    # takes it to the reply processor for the confirmation matches that field).
    [event] = cloud.drain("handoff")
    assert event["detail"]["consent_change"] == "opt_out" and event["detail"]["route"] == "handoff"


def test_a_repeated_keyword_changes_nothing_and_is_no_second_change(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    _say(webhook, "STOP")
    first = _consent(cloud)
    _say(webhook, "stop")
    assert _consent(cloud) == first
    assert [m.consent_change for m in history(cloud, conversation.conversation_id)] == ["opt_out", None]
    changes = [
        i
        for i in cloud.dynamodb.scan(TableName=TABLES["consent"])["Items"]
        if i.get("item_type", {}).get("S") == "consent_change"
    ]
    assert len(changes) == 1


def test_start_without_an_opt_out_is_an_ordinary_message(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    _say(webhook, "START")
    assert _consent(cloud) is None
    [message] = history(cloud, conversation.conversation_id)
    assert message.consent_change is None


def test_a_stop_from_a_customer_with_no_conversation_is_recorded(cloud: Cloud, webhook: Any) -> None:
    _say(webhook, "STOP")
    assert _consent(cloud).state == "opted_out"
    opened = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).latest_for(
        CUSTOMER_NUMBER, "whatsapp:" + COMPANY_NUMBER
    )
    assert opened is not None and opened.opened_by == "customer"
