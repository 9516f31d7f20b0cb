"""`ops consent`: a customer's consent for one company address, changed by a person, and exports.

Consent is kept per (company address, customer address) outside any conversation and never
expires; every change says who made it and why. An export lists every customer of a project's
addresses with their state and history, for the tenant's own records (it holds phone numbers:
the file is written readable by its owner only).
"""

import csv
import io
import json
from collections.abc import Iterator
from typing import Literal

from ai_comms.clock import iso, utc_now
from ai_comms.models.consent import Consent, ConsentChange, ConsentState
from ai_comms.models.tenant import ProjectConfig
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.tenants import TenantRepository
from ops.errors import NotFound, UsageError
from ops.target import Target

EXPORT_FIELDS = (
    "company_address",
    "customer_address",
    "state",
    "changed_at",
    "source",
    "keyword",
    "message_sid",
    "conversation_id",
    "operator",
    "reason",
    "current",
)


def _repository(target: Target) -> ConsentRepository:
    return ConsentRepository(target.client("dynamodb"), target.consent_table)


def project_of(target: Target, company_id: str, project_id: str) -> ProjectConfig:
    project = TenantRepository(target.client("dynamodb"), target.company_table).get_project(
        company_id, project_id
    )
    if project is None:
        raise NotFound(f"no project {company_id}/{project_id}")
    return project


def customer_address(project: ProjectConfig, channel: str, tel: str) -> tuple[str, str]:
    """(company address, customer address) of a customer number on one of the project's channels."""
    settings = project.channel(channel)
    if settings is None:
        raise UsageError(f"project {project.company_id}/{project.project_id} has no {channel} channel")
    prefix = settings.address.rpartition(":")[0]
    number = tel.strip().rpartition(":")[2]
    return settings.address, f"{prefix}:{number}" if prefix else number


def show(target: Target, project: ProjectConfig, channel: str, tel: str) -> Consent | None:
    company, customer = customer_address(project, channel, tel)
    return next((c for c in _repository(target).of_address(company) if c.customer_address == customer), None)


def set_state(
    target: Target,
    project: ProjectConfig,
    channel: str,
    tel: str,
    state: ConsentState,
    operator: str,
    reason: str,
) -> bool:
    """Record a person's change; False when the customer was in that state already."""
    company, customer = customer_address(project, channel, tel)
    change = ConsentChange(
        state=state, at=iso(utc_now()), source="operator", operator=operator, reason=reason
    )
    return _repository(target).change(company, customer, project.company_id, project.project_id, change)


def rows(target: Target, project: ProjectConfig) -> Iterator[dict[str, str]]:
    """Every change of every customer of every address of the project, oldest first; the last one
    of each customer is the current state."""
    repository = _repository(target)
    for settings in project.channels.values():
        for consent in repository.of_address(settings.address):
            changes = consent.history or [consent.change]
            for change in changes:
                yield {
                    "company_address": consent.company_address,
                    "customer_address": consent.customer_address,
                    "state": change.state,
                    "changed_at": change.at,
                    "source": change.source,
                    "keyword": change.keyword or "",
                    "message_sid": change.message_sid or "",
                    "conversation_id": change.conversation_id or "",
                    "operator": change.operator or "",
                    "reason": change.reason or "",
                    "current": "yes" if change is changes[-1] else "",
                }


def export(target: Target, project: ProjectConfig, fmt: Literal["csv", "json"]) -> str:
    found = list(rows(target, project))
    if fmt == "json":
        return json.dumps(found, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(found)
    return out.getvalue()
