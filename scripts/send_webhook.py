"""Send a correctly signed Twilio incoming-message webhook to the local engine (or any deployment).

    .venv/bin/python scripts/send_webhook.py "Hi, where is my order?"
    .venv/bin/python scripts/send_webhook.py --from +447700900999 "I am new here"   # unmatched sender

Defaults come from .local/endpoints.json, written by `make local`: the webhook URL, the demo company
number, the demo customer and the demo tenant's Twilio account sid and auth token. Against a real
deployment pass --url, --to, --account-sid and --auth-token (the tenant's, from Secrets Manager).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ai_comms.providers.twilio_signature import sign

ENDPOINTS = Path(__file__).resolve().parents[1] / ".local" / "endpoints.json"
PREFIXES = {"whatsapp": "whatsapp:"}


def parse_args(argv: list[str] | None, defaults: dict[str, Any]) -> argparse.Namespace:
    demo = defaults.get("demo", {})
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("body", nargs="?", default="Hello!", help="the customer's message")
    parser.add_argument("--channel", default="whatsapp")
    parser.add_argument("--url", help="webhook URL (default: the local engine's, for --channel)")
    parser.add_argument("--from", dest="from_tel", default=demo.get("customer_tel"), help="customer E.164")
    parser.add_argument("--to", dest="to_tel", help="company E.164 (default: the demo number)")
    parser.add_argument("--account-sid", default=demo.get("account_sid"))
    parser.add_argument("--auth-token", default=demo.get("auth_token"), help="signs the request")
    parser.add_argument("--sid", help="MessageSid (repeat one to see a retry dropped)")
    parser.add_argument("--bad-signature", action="store_true", help="sign with a wrong token (expect 403)")
    args = parser.parse_args(argv)
    args.url = args.url or defaults.get("webhook_urls", {}).get(args.channel)
    args.to_tel = args.to_tel or demo.get("company_numbers", {}).get(args.channel)
    missing = [n for n in ("url", "from_tel", "to_tel", "account_sid", "auth_token") if not getattr(args, n)]
    if missing:
        parser.error(f"missing {', '.join(missing)}: run `make local` first or pass them")
    return args


def tell_fake(fake_url: str, customer: str, company: str) -> None:
    body = json.dumps({"from": customer, "to": company}).encode()
    request = urllib.request.Request(  # noqa: S310 - the local fake's loopback URL
        f"{fake_url}/fake/inbound", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            pass
    except (urllib.error.URLError, OSError) as error:
        print(f"warning: the Twilio fake did not take the customer's message ({error})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    defaults = json.loads(ENDPOINTS.read_text()) if ENDPOINTS.is_file() else {}
    args = parse_args(argv, defaults)
    prefix = PREFIXES.get(args.channel, "")
    form = {
        "MessageSid": args.sid or "SM" + uuid.uuid4().hex,
        "AccountSid": args.account_sid,
        "From": prefix + args.from_tel,
        "To": prefix + args.to_tel,
        "Body": args.body,
        "NumMedia": "0",
    }
    fake = defaults.get("twilio_fake_url")
    if fake and args.url == defaults.get("webhook_urls", {}).get(args.channel):
        # Locally, Twilio is the fake: tell it the customer wrote, as the real Twilio would know,
        # so WhatsApp's 24-hour window is open for the engine's free-form reply.
        tell_fake(fake, form["From"], form["To"])
    token = "not-the-token" if args.bad_signature else args.auth_token
    payload = urlencode(form).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(token, args.url, form),
    }
    if not args.url.startswith(("http://", "https://")):
        raise SystemExit("--url must be http(s)")
    request = urllib.request.Request(args.url, data=payload, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    print(f"{status} {form['MessageSid']} {text}")
    return 0 if status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
