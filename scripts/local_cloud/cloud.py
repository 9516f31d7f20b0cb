"""``LocalCloud``: the whole local stack in one object, shared by the e2e tests and ``make local``.

The emulator is moto or LocalStack, as ``EMULATOR`` says (default moto), DynamoDB Local under both
(see local_cloud.emulator). Order matters: the emulator first, then ``terraform apply`` of each
workspace against it (in parallel: separate state files, no shared ``workspace select``), then the
runner, which reads back what Terraform created. ``stop`` undoes it in reverse, each step bounded.
``EMULATOR=localstack-docker`` adopts a LocalStack the user runs in Docker, which executes the
functions itself: no runner then, and ``stop`` destroys the workspaces (local_cloud.localstack_docker).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from local_cloud.artifacts import MANIFEST_NAME
from local_cloud.emulator import DEFAULT_PORT, EmulatorBase, MotoEmulator
from local_cloud.endpoints import Endpoints
from local_cloud.localstack import LocalStackEmulator
from local_cloud.localstack_docker import (
    CUSTOM_ID_TAG,
    LocalStackDockerEmulator,
    api_id_for,
    execute_api_url,
)
from local_cloud.processes import Stops, free_port
from local_cloud.runner import DEFAULT_REGION, Runner
from local_cloud.terraform import Terraform, TerraformError, Workspace

LOG = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
WorkspaceLike = Workspace | tuple[str, str, dict[str, str] | None] | str
EMULATOR_ENV = "EMULATOR"
EMULATORS = ("moto", "localstack", "localstack-docker")
# The emulators whose functions the local runner executes (what `make local` and `make bench` measure).
RUNNER_EMULATORS = ("moto", "localstack")
__all__ = [
    "EMULATORS",
    "RUNNER_EMULATORS",
    "LocalCloud",
    "emulator_kind",
    "free_port",
    "make_emulator",
    "runner_emulator_kind",
]


def emulator_kind(value: str | None = None) -> str:
    """``value``, else ``EMULATOR`` from the environment, else moto."""
    kind = (value or os.environ.get(EMULATOR_ENV) or EMULATORS[0]).strip().lower()
    if kind not in EMULATORS:
        raise ValueError(f"{EMULATOR_ENV}={kind!r}: expected one of {', '.join(EMULATORS)}")
    return kind


def runner_emulator_kind(value: str | None = None) -> str:
    """``emulator_kind``, refusing one that runs the functions itself (no runner to observe)."""
    kind = emulator_kind(value)
    if kind not in RUNNER_EMULATORS:
        raise ValueError(
            f"{EMULATOR_ENV}={kind} serves the e2e suite only (make test-e2e): this command needs the "
            f"local runner, on {' or '.join(RUNNER_EMULATORS)}"
        )
    return kind


def make_emulator(
    kind: str | None = None,
    port: int = DEFAULT_PORT,
    work_dir: Path | None = None,
    reuse: bool = False,
    dynamodb_port: int = 0,
) -> EmulatorBase:
    """The emulator ``kind`` (else ``EMULATOR``) names, with its logs and files under ``work_dir``."""
    log_dir = work_dir / "logs" if work_dir is not None else None
    if emulator_kind(kind) == "localstack-docker":
        return LocalStackDockerEmulator()
    if emulator_kind(kind) == "localstack":
        if work_dir is None:
            raise ValueError("LocalStack needs a work dir for its filesystem")
        return LocalStackEmulator(port, work_dir / "localstack", log_dir, reuse=reuse)
    return MotoEmulator(port, log_dir, reuse=reuse, dynamodb_port=dynamodb_port)


def as_workspace(value: WorkspaceLike) -> Workspace:
    if isinstance(value, Workspace):
        return value
    if isinstance(value, str):
        return Workspace(value)
    name, tfvars, extra = value
    return Workspace(name, tfvars, tuple(sorted((extra or {}).items())))


class LocalCloud(Stops):
    """Emulator + Terraform workspaces + runner. Use ``with LocalCloud().start(...) as cloud:``."""

    def __init__(
        self,
        root: Path = REPO_ROOT,
        build_dir: Path | None = None,
        work_dir: Path | None = None,
        region: str = DEFAULT_REGION,
        emulator: str | None = None,
    ) -> None:
        self.root = root.resolve()
        self.emulator_kind = emulator_kind(emulator)
        self.build_dir = (build_dir or self.root / "build").resolve()
        self.work_dir = (work_dir or self.root / ".local").resolve()
        self.region = region
        self.terraform = Terraform(self.root / "terraform")
        self.emulator: EmulatorBase | None = None
        self.runner: Runner | None = None
        self.workspaces: list[Workspace] = []
        self.outputs: dict[str, dict[str, Any]] = {}

    @property
    def endpoint_url(self) -> str:
        """Every AWS endpoint but DynamoDB's."""
        assert self.emulator is not None, "start() first"
        return self.emulator.url

    @property
    def dynamodb_endpoint_url(self) -> str:
        """DynamoDB and DynamoDB Streams (DynamoDB Local: behind its front on moto, in LocalStack)."""
        assert self.emulator is not None, "start() first"
        return self.emulator.dynamodb_url

    @property
    def endpoints(self) -> Endpoints:
        assert self.emulator is not None, "start() first"
        return self.emulator.endpoints

    def client(self, service: str) -> Any:
        """A boto3 client of the local cloud, DynamoDB's at DynamoDB's endpoint."""
        return self.endpoints.client(service, self.region)

    def api_base_url(self, workspace: str) -> str:
        """Where that workspace's REST API stage is served: by the runner's front on
        http://127.0.0.1:<port>/<stage>, or by an emulator that runs the functions itself."""
        outputs = self.outputs.get(workspace, {})
        stage = outputs.get("api_stage", workspace)
        if self.emulator is not None and self.emulator.executes_functions:
            return execute_api_url(self.emulator.url, outputs.get("api_id") or api_id_for(workspace), stage)
        assert self.runner is not None, "start() first"
        return f"{self.runner.api_base_url}/{stage}"

    def start(
        self,
        emulator_port: int = 5000,
        api_port: int = 8080,
        workspaces: Iterable[WorkspaceLike] = ("local",),
        reuse_emulator: bool = False,
        pollers: bool = True,
        count_calls: bool = False,
        dynamodb_port: int = 0,
    ) -> LocalCloud:
        """Bring everything up; on any failure, tear down what was started and re-raise.

        Port 0 picks a free port (tests run beside ``make local`` without clashing);
        ``dynamodb_port`` is the DynamoDB front's on moto (LocalStack serves DynamoDB on its port).
        """
        # The runner serves the API on this port; chosen before the apply so each workspace knows its
        # public URL (the senders' StatusCallback, the URL Twilio signs), as API Gateway's would be.
        api_port = api_port or free_port()
        emulator = make_emulator(
            self.emulator_kind,
            emulator_port or free_port(),
            self.work_dir,
            reuse=reuse_emulator,
            dynamodb_port=dynamodb_port,
        )
        # Terraform deploys the same artifacts the runner will check the deployed hashes against.
        self.workspaces = [
            replace(w, extra_vars=(*w.extra_vars, *self._local_vars(w, api_port, emulator)))
            for w in map(as_workspace, workspaces)
        ]
        if not (self.build_dir / MANIFEST_NAME).is_file():
            raise FileNotFoundError(
                f"{self.build_dir / MANIFEST_NAME} missing: run `python scripts/build.py`"
            )
        self._default_cli_config()
        try:
            self.emulator = emulator
            self.emulator.start()
            LOG.info(
                "emulator %s ready at %s (DynamoDB at %s)",
                self.emulator.name,
                self.emulator.url,
                self.emulator.dynamodb_url,
            )
            fresh = not self.emulator.adopted
            endpoints = self.endpoints
            with ThreadPoolExecutor(max_workers=max(len(self.workspaces), 1)) as pool:
                futures = {
                    w.name: pool.submit(self.terraform.apply, w, endpoints, fresh) for w in self.workspaces
                }
                self.outputs = {name: future.result() for name, future in futures.items()}
            # The tfvars may move the region; the runner must read back from the same one.
            regions = {o["region"] for o in self.outputs.values() if o.get("region")}
            if len(regions) > 1:
                raise ValueError(
                    f"workspaces use several regions {sorted(regions)}; start one cloud per region"
                )
            self.region = regions.pop() if regions else self.region
            if self.emulator.executes_functions:
                return self
            self.runner = Runner(
                endpoints,
                self.build_dir,
                self.work_dir,
                region=self.region,
                api_port=api_port,
                log_dir=self.work_dir / "logs",
                pollers=pollers,
                count_calls=count_calls,
                binary_media_types={
                    str(outputs["api_id"]): tuple(outputs.get("api_binary_media_types") or ())
                    for outputs in self.outputs.values()
                    if "api_id" in outputs
                },
            )
            self.runner.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Runner first (no new work), then the emulator (which takes all cloud state with it)."""
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        if self.emulator is not None:
            if self.emulator.executes_functions:
                self._destroy_workspaces(self.emulator.endpoints)
            adopted = self.emulator.adopted
            self.emulator.stop()
            self.emulator = None
            if not adopted:
                # The resources died with the emulator; stale state would only confuse the next apply.
                for workspace in self.workspaces:
                    self.terraform.forget(workspace.name)

    def _destroy_workspaces(self, endpoints: Endpoints) -> None:
        """An emulator that outlives the run keeps what was applied: take it down, each on its own."""
        for workspace in self.workspaces:
            if workspace.name not in self.outputs:
                continue
            try:
                self.terraform.destroy(workspace, endpoints)
            except TerraformError:  # report it and go on with the other workspaces
                LOG.exception("destroying workspace %s failed; its resources remain", workspace.name)
                continue
            self.terraform.forget(workspace.name)

    def _local_vars(
        self, workspace: Workspace, api_port: int, emulator: EmulatorBase
    ) -> list[tuple[str, str]]:
        local = [("build_dir", str(self.build_dir))]
        # The stage is named after the workspace (terraform/main.tf).
        if emulator.executes_functions:
            # LocalStack serves the stage itself, under an id the workspace chooses.
            api_id = api_id_for(workspace.name)
            local.append(("api_tags", f'{{{CUSTOM_ID_TAG}="{api_id}"}}'))
            base_url = execute_api_url(emulator.url, api_id, workspace.name)
        else:
            base_url = f"http://127.0.0.1:{api_port}/{workspace.name}"  # the runner's front
        if not any(name == "public_base_url" for name, _ in workspace.extra_vars):
            local.append(("public_base_url", base_url))
        return local

    def _default_cli_config(self) -> None:
        # `make` exports TF_CLI_CONFIG_FILE; a direct `python -m local_cloud` should find the same file.
        config = self.work_dir / "terraform.rc"
        if "TF_CLI_CONFIG_FILE" not in os.environ and config.is_file():
            os.environ["TF_CLI_CONFIG_FILE"] = str(config)

    def __enter__(self) -> LocalCloud:
        return self  # started already: ``with LocalCloud().start(...) as cloud:``
