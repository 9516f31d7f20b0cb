"""Template variable values as Twilio accepts them, whatever the AI wrote.

Twilio refuses a send whose ContentVariables hold a value with "a newline, a tab or more than four
consecutive spaces" or one that resolves to an empty string (https://www.twilio.com/docs/errors/21656),
or a value over 1,600 characters (https://www.twilio.com/docs/errors/21658). The AI is asked for plain
one-line values, but a refusal here would fail the whole conversation, so every value is normalised
before the send: runs of whitespace become one space, the ends are trimmed and the length is capped
(at a word boundary when there is one, ending in an ellipsis).
"""

import re

MAX_VALUE_CHARS = 1600
_WHITESPACE = re.compile(r"\s+")
_ELLIPSIS = "…"


def normalised(value: str) -> str:
    text = _WHITESPACE.sub(" ", value).strip()
    if len(text) <= MAX_VALUE_CHARS:
        return text
    cut = text[: MAX_VALUE_CHARS - len(_ELLIPSIS)]
    space = cut.rfind(" ")
    if space >= MAX_VALUE_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def normalised_values(values: dict[str, str]) -> dict[str, str]:
    """Every value normalised; ValueError naming the variables left empty (Twilio would refuse them)."""
    result = {name: normalised(value) for name, value in values.items()}
    empty = sorted(name for name, value in result.items() if not value)
    if empty:
        raise ValueError(f"template variables empty after normalising: {', '.join(empty)}")
    return result
