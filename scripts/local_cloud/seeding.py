"""Tenants and conversations written into a workspace of the local cloud (demo data and e2e fixtures).

Everything goes through the engine's own models and repositories, so seeded data is exactly what
`ops tenant put` and the Lambdas write and read.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.tenant import AiSettings, ChannelSettings, ProjectConfig
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.tenants import TenantRepository

DEFAULT_PREFIXES = {"whatsapp": "whatsapp:", "sms": ""}
# The API client local.tfvars declares (api_keys): seeded projects name it in api_clients.
DEMO_CLIENT = "demo-client"


@dataclass(frozen=True)
class SeededTenant:
    company_id: str
    project_id: str
    company_numbers: dict[str, str]
    account_sid: str
    auth_token: str
    openai_api_key: str
    secret_names: dict[str, str] = field(default_factory=dict)

    def address(self, channel: str, tel: str | None = None) -> str:
        return DEFAULT_PREFIXES.get(channel, "") + (tel or self.company_numbers[channel])


def _put_secret(secretsmanager: Any, name: str, value: dict[str, str]) -> None:
    payload = json.dumps(value)
    try:
        secretsmanager.create_secret(Name=name, SecretString=payload)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceExistsException":
            raise
        secretsmanager.put_secret_value(SecretId=name, SecretString=payload)


def seed_tenant(
    client: Any,
    outputs: dict[str, Any],
    company_id: str = "demo",
    project_id: str = "support",
    company_numbers: dict[str, str] | None = None,
    status: Literal["active", "inactive"] = "active",
    allowed_channels: list[str] | None = None,
    account_sid: str | None = None,
    auth_token: str | None = None,
    openai_api_key: str | None = None,
    instructions: str = "You are the friendly support assistant of Demo Ltd. Answer briefly.",
    template: dict[str, Any] | None = None,
    api_clients: list[str] | None = None,
    first_contact: Literal["ai", "handoff", "ignore"] = "ai",
    ai: dict[str, Any] | None = None,
    max_output_tokens: int | None = None,
) -> SeededTenant:
    """Secrets under the workspace's tenant prefix, then the project and its address claims.

    `client(service)` returns a boto3 client for the local cloud's emulator. The project lets the
    local workspaces' API client ("demo-client", local.tfvars) act for it unless `api_clients` says
    otherwise; `ai` overrides AiSettings fields.
    """
    numbers = company_numbers or {"whatsapp": "+14155550100"}
    account_sid = account_sid or "AC" + uuid.uuid4().hex
    auth_token = auth_token or secrets.token_hex(16)
    openai_api_key = openai_api_key or "sk-local-" + secrets.token_hex(8)
    prefix = str(outputs["tenant_secret_prefix"]).rstrip("/")
    names = {
        "twilio": f"{prefix}/{company_id}/{project_id}/twilio",
        "openai": f"{prefix}/{company_id}/{project_id}/openai",
    }
    secretsmanager = client("secretsmanager")
    _put_secret(secretsmanager, names["twilio"], {"account_sid": account_sid, "auth_token": auth_token})
    _put_secret(secretsmanager, names["openai"], {"api_key": openai_api_key})
    channels = {
        channel: ChannelSettings(
            address=DEFAULT_PREFIXES.get(channel, "") + tel,
            twilio_secret_ref=names["twilio"],
            **(template or {}),
        )
        for channel, tel in numbers.items()
    }
    project = ProjectConfig(
        company_id=company_id,
        project_id=project_id,
        status=status,
        allowed_channels=allowed_channels or list(numbers),
        channels=channels,
        ai=AiSettings(
            instructions=instructions,
            openai_secret_ref=names["openai"],
            **({} if max_output_tokens is None else {"max_output_tokens": max_output_tokens}),
            **(ai or {}),
        ),
        api_clients=[DEMO_CLIENT] if api_clients is None else api_clients,
        first_contact=first_contact,
    )
    tenants = TenantRepository(client("dynamodb"), outputs["tables"]["company_data"])
    tenants.put_project(project, iso(utc_now()))
    return SeededTenant(company_id, project_id, dict(numbers), account_sid, auth_token, openai_api_key, names)


def open_conversation(
    client: Any,
    outputs: dict[str, Any],
    tenant: SeededTenant,
    customer_tel: str,
    channel: str = "whatsapp",
    **fields: Any,
) -> Conversation:
    """An active conversation, as if the outbound flow had started it."""
    now = iso(utc_now())
    prefix = DEFAULT_PREFIXES.get(channel, "")
    conversation = Conversation(
        recipient_tel=customer_tel,
        conversation_id=fields.pop("conversation_id", None) or str(uuid.uuid4()),
        channel=channel,
        company_id=tenant.company_id,
        project_id=tenant.project_id,
        company_address=prefix + tenant.company_numbers[channel],
        customer_address=prefix + customer_tel,
        created_at=fields.pop("created_at", now),
        updated_at=now,
        last_inbound_at=fields.pop("last_inbound_at", None),
        **fields,
    )
    ConversationRepository(client("dynamodb"), outputs["tables"]["conversations"]).put_new(conversation)
    return conversation
