"""Reading a burst of customer messages for consent: what to confirm, what the AI may answer.

The webhook already changed the customer's consent for every keyword that changed it (and marked
that message); the burst is read in order so the confirmation is the last change's ("STOP" then
"START" confirms the opt-in), and the AI sees only what came after the last keyword: a question
sent before "STOP" is not answered after an opt-in.
"""

from dataclasses import dataclass

from ai_comms.consent.keywords import keyword_of
from ai_comms.models.consent import ConsentChangeKind
from ai_comms.models.message import Message
from ai_comms.models.tenant import ConsentPolicy


@dataclass(frozen=True)
class BurstReading:
    # The last consent change the burst made, to confirm once; None when it made none.
    confirmation: ConsentChangeKind | None
    # The messages the AI may answer (when the customer is opted in): after the last keyword.
    for_ai: list[Message]


def read_burst(messages: list[Message], policy: ConsentPolicy) -> BurstReading:
    confirmation: ConsentChangeKind | None = None
    for_ai: list[Message] = []
    for message in messages:
        if message.consent_change is not None:
            confirmation = message.consent_change
        if message.consent_change is not None or keyword_of(message.body, policy) is not None:
            for_ai = []  # a keyword, changing anything or not (a second STOP), is never the AI's
        else:
            for_ai.append(message)
    return BurstReading(confirmation, for_ai)
