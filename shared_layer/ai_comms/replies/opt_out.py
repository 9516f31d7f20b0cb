"""Opt-out keywords: STOP / UNSUBSCRIBE end messaging to a customer, START resumes it.

A burst is read in order, so "STOP" then "START" leaves the customer opted in. The AI only sees the
messages after the last keyword: a question sent before "STOP" is not answered after an opt-in.
"""

from dataclasses import dataclass
from typing import Literal

STOP_WORDS = frozenset({"STOP", "UNSUBSCRIBE"})
START_WORDS = frozenset({"START"})

Keyword = Literal["stop", "start"]


def keyword_of(body: str) -> Keyword | None:
    word = body.strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


@dataclass(frozen=True)
class OptOutOutcome:
    opted_out: bool
    changed: bool
    ai_messages: list[str]


def read_burst(bodies: list[str], opted_out: bool) -> OptOutOutcome:
    """The customer's opt-out state after the burst and the messages left for the AI to answer.

    A repeated STOP while opted out changes nothing (one confirmation only); START while opted in is
    an ordinary message.
    """
    state = opted_out
    pending: list[str] = []
    for body in bodies:
        keyword = keyword_of(body)
        if keyword == "stop":
            state = True
            pending = []
        elif keyword == "start" and state:
            state = False
            pending = []
        elif not state:
            pending.append(body)
    return OptOutOutcome(opted_out=state, changed=state != opted_out, ai_messages=[] if state else pending)
