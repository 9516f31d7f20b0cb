"""Company/project configuration from a YAML or JSON file, through the Lambdas' own model and repository.

Validating with `ai_comms.models.tenant.ProjectConfig` and writing with `TenantRepository.put_project`
means the CLI can never store a config the functions would reject, and the address claims (one number
belongs to one project) are enforced by the same transaction the engine relies on.
"""

import json
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError

from ai_comms.clock import iso, utc_now
from ai_comms.models.tenant import ProjectConfig
from ai_comms.store.tenants import AddressTaken, TenantRepository
from ops.errors import NotFound, OpsError, UsageError
from ops.target import Target


class InvalidTenant(UsageError):
    """The file does not describe a valid project; `problems` holds one line per field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source} is not a valid project configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def _field(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(file)"


def load(path: str) -> ProjectConfig:
    """Parse by extension (.json -> JSON, else YAML, which also reads JSON) and validate."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error}") from error
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(
            f"{path} is not valid {'JSON' if path.endswith('.json') else 'YAML'}: {error}"
        ) from error
    if not isinstance(data, dict):
        raise InvalidTenant(path, ["(file): expected a mapping of project fields"])
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as error:
        raise InvalidTenant(path, [f"{_field(e['loc'])}: {e['msg']}" for e in error.errors()]) from error


def _repository(target: Target) -> TenantRepository:
    return TenantRepository(target.client("dynamodb"), target.company_table)


def put(target: Target, project: ProjectConfig) -> None:
    repository = _repository(target)
    try:
        repository.put_project(project, iso(utc_now()))
    except AddressTaken as error:
        owners = []
        for channel, settings in project.channels.items():
            route = repository.find_route(settings.address)
            if route and (route.company_id, route.project_id) != (project.company_id, project.project_id):
                owners.append(
                    f"{channel} address {settings.address} belongs to {route.company_id}/{route.project_id}"
                )
        detail = "; ".join(owners) or str(error)
        raise OpsError(f"not written: {detail}") from error


def get(target: Target, company_id: str, project_id: str) -> ProjectConfig:
    project = _repository(target).get_project(company_id, project_id)
    if project is None:
        raise NotFound(f"no project {company_id}/{project_id} in {target.company_table}")
    return project


def list_all(target: Target) -> list[ProjectConfig]:
    return sorted(_repository(target).list_projects(), key=lambda p: (p.company_id, p.project_id))


def dump(project: ProjectConfig, fmt: str) -> str:
    """The same shape `tenant put` reads, so get -> edit -> put round-trips."""
    data: dict[str, Any] = project.model_dump(mode="json")
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False)
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text.rstrip("\n")
