"""Opt-out and opt-in keywords: a message that is only a keyword, ignoring case, the whitespace
around it and punctuation ("Stop.", "  stop! ", "STOP!!" opt out; "please stop" does not).

The lists are per project (ConsentPolicy in the tenant config). The defaults are the keywords
Twilio's Advanced Opt-Out honours for SMS (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT,
REVOKE to opt out; START, UNSTOP to opt back in), so a customer's habit from SMS works on WhatsApp.
"""

import unicodedata

from ai_comms.models.consent import ConsentChangeKind
from ai_comms.models.tenant import MAX_KEYWORD_CHARS, ConsentPolicy


def normalised(body: str) -> str:
    """Upper case, without punctuation, symbols or control characters, trimmed of whitespace."""
    kept = [
        char
        for char in unicodedata.normalize("NFKC", body)
        if not unicodedata.category(char).startswith(("P", "S", "C"))
    ]
    return "".join(kept).strip().upper()


def keyword_of(body: str, policy: ConsentPolicy) -> ConsentChangeKind | None:
    """ "opt_out" / "opt_in" when the whole message is one of the project's keywords, else None."""
    if len(body) > MAX_KEYWORD_CHARS * 4:
        return None
    word = normalised(body)
    if word in policy.opt_out_keywords:
        return "opt_out"
    if word in policy.opt_in_keywords:
        return "opt_in"
    return None
