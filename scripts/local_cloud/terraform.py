"""Terraform for the local cloud: the real root module, one workspace per local environment.

State stays apart from real deployments because each workspace has its own state file in the local
backend (terraform/terraform.tfstate.d/<workspace>/, git-ignored). The workspace is chosen with
``TF_WORKSPACE`` rather than ``terraform workspace select``: select rewrites .terraform/environment,
which would switch the developer's current workspace and race when several workspaces apply in
parallel; TF_WORKSPACE affects only the one process (and the local backend creates the state folder).

A fresh emulator holds none of the resources an old local state lists, so ``reset_state`` deletes
that workspace's state before applying instead of letting Terraform refresh dozens of phantoms.
Workspaces that name a real environment's tfvars (dev, prod, ...) are refused outright.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_cloud.endpoints import Endpoints

LOG = logging.getLogger(__name__)
LOCAL_TFVARS = "local.tfvars"
_init_lock = threading.Lock()
_REAL_AWS_SETTINGS = {
    "TF_WORKSPACE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
}


@dataclass(frozen=True)
class Workspace:
    """One local environment: a workspace name, its tfvars file (under workspaces/) and extra -var pairs."""

    name: str
    tfvars: str = LOCAL_TFVARS
    extra_vars: tuple[tuple[str, str], ...] = ()


class TerraformError(RuntimeError):
    pass


class Terraform:
    """Runs terraform in ``terraform_dir`` with output streamed line by line, prefixed by workspace."""

    def __init__(self, terraform_dir: Path, executable: str = "terraform") -> None:
        self.terraform_dir = terraform_dir.resolve()
        self.executable = executable
        self._initialised = False
        self.apply_seconds: dict[str, float] = {}

    def real_workspaces(self) -> set[str]:
        """Names with their own tfvars other than local.tfvars: those are real deployments."""
        folder = self.terraform_dir / "workspaces"
        return {path.stem for path in folder.glob("*.tfvars") if path.name != LOCAL_TFVARS}

    def state_dir(self, workspace: str) -> Path:
        return self.terraform_dir / "terraform.tfstate.d" / workspace

    def run(self, args: Sequence[str], workspace: str | None = None, capture: bool = False) -> str:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in _REAL_AWS_SETTINGS and not name.startswith("AWS_ENDPOINT_URL_")
        }
        # Fake credentials: the emulator accepts any, and real ones must never be sent to it.
        env.update(
            TF_IN_AUTOMATION="1",
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 - the emulator accepts any credentials
            AWS_EC2_METADATA_DISABLED="true",
        )
        if workspace is not None:
            env["TF_WORKSPACE"] = workspace
        prefix = f"[terraform {workspace or '-'}]"
        command = [self.executable, f"-chdir={self.terraform_dir}", *args, "-no-color"]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if not capture:
                LOG.info("%s %s", prefix, line.rstrip())
        code = process.wait()
        if code != 0:
            # The error blocks are at the end; the log already holds the rest.
            tail = "".join(lines[-40:])
            raise TerraformError(
                f"terraform {args[0]} failed for workspace {workspace} (exit {code})\n{tail}"
            )
        return "".join(lines)

    def init(self) -> None:
        """``init`` once per process, and one process at a time (the e2e suites of both emulators
        run side by side): parallel inits in one directory would fight over .terraform/."""
        with _init_lock:
            if self._initialised:
                return
            data_dir = self.terraform_dir / ".terraform"
            data_dir.mkdir(exist_ok=True)
            with (data_dir / "local-cloud-init.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.run(["init", "-input=false"])
            self._initialised = True

    def _var_args(self, workspace: Workspace, endpoints: Endpoints | str) -> list[str]:
        where = Endpoints.of(endpoints)
        args = [
            f"-var-file=workspaces/{workspace.tfvars}",
            f"-var=aws_endpoint_url={where.aws}",
            f"-var=aws_dynamodb_endpoint_url={where.dynamodb}",
        ]
        args += [f"-var={name}={value}" for name, value in workspace.extra_vars]
        return args

    def _guard(self, workspace: Workspace) -> None:
        if workspace.name in self.real_workspaces() or workspace.name == "default":
            raise TerraformError(
                f"workspace {workspace.name!r} belongs to a real deployment; pick another name"
            )

    def apply(
        self, workspace: Workspace, endpoints: Endpoints | str, reset_state: bool = False
    ) -> dict[str, Any]:
        """Apply against the emulator (DynamoDB at its own endpoint) and return the outputs."""
        self._guard(workspace)
        self.init()
        if reset_state and self.state_dir(workspace.name).exists():
            shutil.rmtree(self.state_dir(workspace.name))
        started = time.monotonic()
        self.run(
            ["apply", "-auto-approve", "-input=false", *self._var_args(workspace, endpoints)],
            workspace=workspace.name,
        )
        self.apply_seconds[workspace.name] = time.monotonic() - started
        LOG.info("[terraform %s] apply took %.1f s", workspace.name, self.apply_seconds[workspace.name])
        return self.outputs(workspace.name)

    def outputs(self, workspace: str) -> dict[str, Any]:
        raw = json.loads(self.run(["output", "-json"], workspace=workspace, capture=True))
        return {name: entry["value"] for name, entry in raw.items()}

    def destroy(self, workspace: Workspace, endpoints: Endpoints | str) -> None:
        self._guard(workspace)
        self.init()
        self.run(
            ["destroy", "-auto-approve", "-input=false", *self._var_args(workspace, endpoints)],
            workspace=workspace.name,
        )

    def forget(self, workspace: str) -> None:
        """Drop a local workspace's state (the emulator that held its resources is gone)."""
        if workspace not in self.real_workspaces() and self.state_dir(workspace).exists():
            shutil.rmtree(self.state_dir(workspace))
