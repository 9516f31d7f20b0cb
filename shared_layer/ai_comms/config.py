"""Settings read once per container from the function's environment (set by Terraform)."""

import json
import os
from dataclasses import dataclass, field


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class ChannelRuntime:
    """What a function must know about a channel without reading tenant config."""

    name: str
    address_prefix: str


@dataclass(frozen=True)
class Settings:
    company_table: str
    conversations_table: str
    idempotency_table: str
    messages_table: str
    consent_table: str
    event_bus_name: str
    channels: dict[str, ChannelRuntime] = field(default_factory=dict)
    public_base_url: str = ""
    # MAX_BODY_BYTES when Terraform sets it; else each API function's own default.
    max_body_bytes: int | None = None
    tenant_cache_seconds: int = 60
    secret_cache_seconds: int = 300
    conversation_ttl_days: int = 90
    twilio_api_base_url: str = ""
    openai_base_url: str = ""
    # The first pause of a tenant whose credentials or quota are refused (pausing.PauseGate).
    tenant_pause_seconds: int = 60

    @classmethod
    def from_env(cls) -> "Settings":
        channels_raw = json.loads(os.environ.get("CHANNELS", "{}"))
        channels = {
            name: ChannelRuntime(name=name, address_prefix=str(spec.get("address_prefix", "")))
            for name, spec in channels_raw.items()
        }
        return cls(
            company_table=_required("COMPANY_TABLE"),
            conversations_table=_required("CONVERSATIONS_TABLE"),
            idempotency_table=_required("IDEMPOTENCY_TABLE"),
            messages_table=_required("MESSAGES_TABLE"),
            consent_table=_required("CONSENT_TABLE"),
            event_bus_name=_required("EVENT_BUS_NAME"),
            channels=channels,
            public_base_url=os.environ.get("PUBLIC_BASE_URL", "").rstrip("/"),
            max_body_bytes=int(os.environ["MAX_BODY_BYTES"]) if os.environ.get("MAX_BODY_BYTES") else None,
            tenant_cache_seconds=int(os.environ.get("TENANT_CACHE_SECONDS", "60")),
            secret_cache_seconds=int(os.environ.get("SECRET_CACHE_SECONDS", "300")),
            conversation_ttl_days=int(os.environ.get("CONVERSATION_TTL_DAYS", "90")),
            twilio_api_base_url=os.environ.get("TWILIO_API_BASE_URL", "").rstrip("/"),
            openai_base_url=os.environ.get("OPENAI_BASE_URL", "").rstrip("/"),
            tenant_pause_seconds=int(os.environ.get("TENANT_PAUSE_SECONDS", "60")),
        )
