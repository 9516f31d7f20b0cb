"""Channel addresses: Twilio writes a WhatsApp number as 'whatsapp:+E164' and an SMS number as '+E164'."""

import re

E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


class AddressError(ValueError):
    pass


def tel_of(address: str, prefix: str) -> str:
    """The E.164 number inside a channel address, checked against the channel's prefix."""
    if not address.startswith(prefix):
        raise AddressError(f"address does not start with {prefix!r}")
    tel = address[len(prefix) :]
    if not E164.match(tel):
        raise AddressError("not an E.164 number")
    return tel


def address_of(tel: str, prefix: str) -> str:
    if not E164.match(tel):
        raise AddressError("not an E.164 number")
    return prefix + tel
