"""What the AI reads of a customer's message: its text, and in plain words whatever else it carried
(a location, the button pressed, the ad the customer came from, attachments by type), so it can
answer them. Media are named by type only: their URLs need the tenant's Twilio credentials."""

from ai_comms.models.message import Message


def ai_text(message: Message) -> str:
    lines = [message.body.strip()] if message.body.strip() else []
    content = message.content
    if content is not None:
        if content.button_text or content.button_payload:
            lines.append(
                f'(The customer pressed the button "{content.button_text or ""}"'
                + (f", payload {content.button_payload})" if content.button_payload else ")")
            )
        if content.location is not None:
            place = ", ".join(part for part in (content.location.label, content.location.address) if part)
            lines.append(
                f"(The customer shared a location: {place + ' ' if place else ''}"
                f"at {content.location.latitude}, {content.location.longitude})"
            )
        if content.referral_headline or content.referral_body:
            ad = " - ".join(part for part in (content.referral_headline, content.referral_body) if part)
            lines.append(f"(The customer wrote from an ad: {ad})")
        if content.media_types:
            count = len(content.media_types)
            kinds = ", ".join(content.media_types)
            noun = "attachment" if count == 1 else "attachments"
            lines.append(f"(The customer sent {count} {noun}: {kinds}.)")
    elif message.num_media:
        lines.append(f"(The customer sent {message.num_media} attachment(s).)")
    return "\n".join(lines) or "(The customer sent an empty message.)"
