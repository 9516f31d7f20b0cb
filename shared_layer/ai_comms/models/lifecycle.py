"""A conversation's lifecycle: every status and every transition between them, in one table.

The store builds each status write's condition from this table (``guard``, by the transition's
name): a write can only move a conversation along a transition listed here, from exactly the
statuses listed, and a name that is not in the table fails at once (KeyError). The README's
state diagram is generated from it. No status is a dead end: each has a way out, if only by an
operator's ``ops conversation retry`` or a customer who writes again (an ended conversation never
captures a message: a new one opens).
"""

from dataclasses import dataclass
from typing import Any

from ai_comms.models.conversation import ConversationStatus

NEW = "(new)"


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: ConversationStatus
    why: str


TRANSITIONS: tuple[Transition, ...] = (
    Transition("requested", (NEW,), "initiating", "a company requests the conversation"),
    Transition("customer_first_ai", (NEW,), "active", "a customer writes first (first_contact ai)"),
    Transition(
        "customer_first_handoff", (NEW,), "handed_off", "a customer writes first (first_contact handoff)"
    ),
    Transition("customer_first_ignore", (NEW,), "ignored", "a customer writes first (first_contact ignore)"),
    Transition("claim_send", ("initiating",), "sending", "the template's send is claimed"),
    Transition("release_send", ("sending",), "initiating", "Twilio certainly did not send it: retried"),
    Transition("template_sent", ("sending",), "active", "Twilio accepted the template"),
    Transition(
        "withheld", ("sending",), "undelivered", "the recipient opted out or blocked the sender first"
    ),
    Transition(
        "template_undelivered",
        ("initiating", "sending", "active"),
        "undelivered",
        "Twilio reports the template failed",
    ),
    Transition("request_failed", ("initiating",), "failed", "the request can never be sent as made"),
    Transition("window_closed", ("active",), "window_closed", "messages after WhatsApp's 24-hour window"),
    Transition("customer_returns", ("window_closed", "opted_out"), "active", "the customer writes again"),
    Transition(
        "hand_over",
        ("active", "window_closed"),
        "handed_off",
        "the AI hands over or cannot answer; a reply refused or undelivered",
    ),
    Transition("handback", ("handed_off", "ignored"), "active", "handback: the AI answers the next message"),
    Transition(
        "tenant_misconfigured",
        ("active", "window_closed", "handed_off", "ignored", "opted_out"),
        "failed",
        "the tenant's configuration cannot serve it",
    ),
    Transition(
        "close",
        ("active", "window_closed", "handed_off", "ignored", "opted_out"),
        "closed",
        "closed by a person, or idle past the project's limit",
    ),
    Transition("retry", ("failed", "undelivered", "handed_off"), "active", "ops conversation retry"),
)

BY_NAME: dict[str, Transition] = {transition.name: transition for transition in TRANSITIONS}


def guard(name: str) -> tuple[str, dict[str, Any], str]:
    """The condition on ``#status``, its values and the target status of the transition `name`: a
    write moves a conversation only along a transition of the table (any other name: KeyError)."""
    transition = BY_NAME[name]
    sources = [source for source in transition.sources if source != NEW]
    if not sources:
        raise ValueError(f"{name} creates a conversation: its write is conditioned on the key")
    values = {f":{name}_from_{i}": {"S": source} for i, source in enumerate(sources)}
    return f"#status IN ({', '.join(values)})", values, transition.target


def mermaid() -> str:
    """The table as a mermaid state diagram (the README's)."""
    lines = ["stateDiagram-v2"]
    for transition in TRANSITIONS:
        for source in transition.sources:
            start = "[*]" if source == NEW else source
            lines.append(f"    {start} --> {transition.target}: {transition.why}")
    return "\n".join(lines)
