"""Which deployment the CLI talks to: resource names and boto3 clients for one workspace.

Names come from `terraform output -json` when given (`--outputs`), which stays right even if the
root module renames something; otherwise they are derived from the naming contract
"<name_prefix>-<workspace>-...", so an operator needs nothing but the workspace name. The same code
reaches real AWS or the local cloud: only the endpoint URLs differ (the local cloud serves DynamoDB at
an endpoint of its own, `--dynamodb-endpoint-url`, when its emulator is moto).
"""

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from ops.errors import UsageError

DEFAULT_NAME_PREFIX = "ai-comms"
WORKSPACE_ENV = "AI_COMMS_WORKSPACE"
# Where `make local` says where everything is (local_cloud.demo.write_endpoints).
LOCAL_ENDPOINTS = Path(__file__).resolve().parents[2] / ".local" / "endpoints.json"
LOCAL_ENDPOINTS_ENV = "AI_COMMS_LOCAL_ENDPOINTS"

# Operators wait for answers, but a hung endpoint must not hang a script: bounded, with the SDK's
# standard retries for throttling.
_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 5})


def read_outputs(path: str) -> dict[str, Any]:
    """`terraform output -json` ({"x": {"value": ...}}) or a plain {"x": ...} mapping."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read outputs file {path}: {error}") from error
    if not isinstance(raw, dict):
        raise UsageError(f"outputs file {path} is not a JSON object")
    return {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw.items()}


@dataclass
class Target:
    workspace: str
    name_prefix: str = DEFAULT_NAME_PREFIX
    region: str | None = None
    endpoint_url: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    dynamodb_endpoint_url: str | None = None

    @classmethod
    def resolve(
        cls,
        workspace: str | None,
        name_prefix: str | None,
        region: str | None,
        endpoint_url: str | None,
        outputs_file: str | None,
        dynamodb_endpoint_url: str | None = None,
    ) -> "Target":
        outputs = read_outputs(outputs_file) if outputs_file else {}
        workspace = workspace or os.environ.get(WORKSPACE_ENV) or outputs.get("workspace")
        if not workspace:
            raise UsageError(f"no workspace: pass --workspace or set {WORKSPACE_ENV}")
        return cls(
            workspace=workspace,
            name_prefix=name_prefix or DEFAULT_NAME_PREFIX,
            region=region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or outputs.get("region"),
            endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
            outputs=outputs,
            dynamodb_endpoint_url=(
                dynamodb_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or None
            ),
        )

    @classmethod
    def local(cls, workspace: str | None, path: str | None = None) -> "Target":
        """The local cloud `make local` runs, from its endpoints file: no region, endpoint or key needed
        (the emulator takes any credentials; the defaults below are used only when none are set)."""
        where = Path(path or os.environ.get(LOCAL_ENDPOINTS_ENV) or LOCAL_ENDPOINTS)
        try:
            described = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UsageError(
                f"no local cloud described at {where} ({error}): run `make local` first"
            ) from error
        workspaces = described.get("workspaces") or {}
        name = workspace or next(iter(workspaces), None)
        if not name or name not in workspaces:
            raise UsageError(f"workspace {name!r} is not one the local cloud runs: {sorted(workspaces)}")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        return cls(
            workspace=name,
            region=described.get("region") or "eu-west-1",
            endpoint_url=described.get("emulator_url"),
            outputs=workspaces[name].get("outputs") or {},
            dynamodb_endpoint_url=described.get("dynamodb_url"),
        )

    @property
    def name(self) -> str:
        """The prefix of every resource: "<name_prefix>-<workspace>"."""
        value = self.outputs.get("name")
        return value if isinstance(value, str) else f"{self.name_prefix}-{self.workspace}"

    def _table(self, key: str, suffix: str) -> str:
        tables = self.outputs.get("tables")
        if isinstance(tables, dict) and isinstance(tables.get(key), str):
            return str(tables[key])
        return f"{self.name}-{suffix}"

    @property
    def company_table(self) -> str:
        return self._table("company_data", "company-data")

    @property
    def conversations_table(self) -> str:
        return self._table("conversations", "conversations")

    @property
    def messages_table(self) -> str:
        return self._table("messages", "messages")

    @property
    def consent_table(self) -> str:
        return self._table("consent", "consent")

    @property
    def idempotency_table(self) -> str:
        return self._table("idempotency", "idempotency")

    @property
    def bus_name(self) -> str:
        value = self.outputs.get("event_bus_name")
        return value if isinstance(value, str) else self.name

    @property
    def archive_name(self) -> str:
        return f"{self.name}-archive"

    @property
    def events_dlq_name(self) -> str:
        """The dead-letter queue of every EventBridge target (its messages name their target)."""
        return f"{self.name}-events-dlq"

    @property
    def dlq_urls(self) -> dict[str, str]:
        """DLQ URLs by queue name, when the outputs list them."""
        value = self.outputs.get("dlqs")
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    @cached_property
    def _session(self) -> Any:
        return boto3.session.Session(region_name=self.region)

    def endpoint_for(self, service: str) -> str | None:
        if service in ("dynamodb", "dynamodbstreams") and self.dynamodb_endpoint_url:
            return self.dynamodb_endpoint_url
        return self.endpoint_url

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self.endpoint_for(service), config=_CONFIG
            )
        return self._clients[service]

    @cached_property
    def _clients(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        where = self.endpoint_url or f"AWS {self._session.region_name or '(default region)'}"
        return f"workspace {self.workspace} ({self.name}) at {where}"


_PROBE_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 1})


def probe_client(target: Target, service: str) -> Any:
    """A client without retries, for asking whether an optional API exists at all.

    Emulators answer an unimplemented action with HTTP 500, which the SDK would retry with backoff.
    """
    return boto3.session.Session(region_name=target.region).client(
        service, endpoint_url=target.endpoint_url, config=_PROBE_CONFIG
    )
