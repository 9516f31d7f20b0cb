"""Splits a reply longer than one Twilio message (1600 characters) into parts a reader can follow.

Each part ends at the last paragraph break in the last quarter of its window, else the last
sentence end there, else the last space there; so with ordinary text every part but the last is at
least three quarters full, and a 4000-character reply is three messages, not four or five half-empty
ones. Without any break in that quarter the best kind of break anywhere in the window is used; only
a "word" longer than the window (a URL, say) is cut mid-word. Whitespace at the breaks is dropped;
every other character is kept, in order.
"""

import re

TWILIO_MAX_CHARS = 1600

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")
_SPACE = re.compile(r"\s")


def split_message(text: str, limit: int = TWILIO_MAX_CHARS) -> list[str]:
    """The parts to send, each 1..limit characters without surrounding whitespace; none for blank text."""
    if limit < 1:
        raise ValueError("limit must be positive")
    rest = text.strip()
    parts: list[str] = []
    while len(rest) > limit:
        cut = _cut(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _cut(text: str, limit: int) -> int:
    """Where the next part ends: 1..limit. `text` starts with a non-space and is longer than limit."""
    window = text[: limit + 1]  # one more character, to see whether a break follows the limit
    breaks = (
        [m.start() for m in _PARAGRAPH_BREAK.finditer(window)],
        [m.end() for m in _SENTENCE_END.finditer(window)],
        [m.start() for m in _SPACE.finditer(window)],
    )
    # First a break that leaves the part at least three quarters full, the best kind first; else
    # the best kind of break anywhere; else a hard cut.
    for min_fill in ((limit * 3) // 4, 1):
        for ends in breaks:
            fitting = [end for end in ends if min_fill <= end <= limit]
            if fitting:
                return fitting[-1]
    return limit
