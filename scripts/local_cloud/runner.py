"""The Lambda service stand-in: runs deployed functions from the built artifacts the emulator points at.

The emulators (moto; LocalStack with the record-only executor) record functions, layers, mappings and
APIs but cannot execute code without Docker. The runner reads those records, insists that each
function's and layer's CodeSha256 is a file in build/ (so the code that runs is exactly the code
Terraform deployed), unpacks them under .local/lambda/<function>/, and then drives the functions:
SQS and DynamoDB stream pollers, the HTTP API front, and direct ``invoke`` for tests.

Concurrency as in Lambda: each function scales out to its reserved concurrency (read from the
emulator), else to the runner's ``concurrency`` (default 4, or AI_COMMS_LOCAL_CONCURRENCY), one warm
process per execution environment. The API front waits ``throttle_wait`` seconds (default 3, or
AI_COMMS_LOCAL_THROTTLE_WAIT) for a free environment and then answers 429, as a throttled function
behind API Gateway does; each SQS mapping runs as many pollers as its function may run at once, and
a poller holding a batch simply waits for an environment (its messages stay in flight meanwhile).
While it runs, the runner disables the mappings it plays in the emulator, so that the emulator does
not receive their messages itself (see sqs_poller; LocalStack's pollers would consume queues and
streams too), and enables them again on ``stop``. Every function reaches DynamoDB at the local
cloud's DynamoDB endpoint (AWS_ENDPOINT_URL_DYNAMODB, ..._STREAMS) and every other service at the
emulator (AWS_ENDPOINT_URL), or both through its own CallCounter with ``count_calls``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local_cloud.accounting import CallCounter
from local_cloud.api_front import ApiFront
from local_cloud.artifacts import Artifact, load_manifest
from local_cloud.discovery import DYNAMODB_STREAM, SQS, FunctionRecord, MappingRecord, Topology, discover
from local_cloud.dynamodb_stream_poller import DynamoDBStreamPoller
from local_cloud.endpoints import Endpoints, aws_client
from local_cloud.logs import FunctionLogs
from local_cloud.polling import MappingPoller
from local_cloud.sqs_poller import SqsPoller
from local_cloud.worker import DEFAULT_CONCURRENCY, Invocation, Throttled, Worker, WorkerSpec

LOG = logging.getLogger(__name__)
DEFAULT_REGION = "eu-west-1"
DEFAULT_THROTTLE_WAIT = 3.0
_STAMP = ".code-sha256"
CONCURRENCY_ENV = "AI_COMMS_LOCAL_CONCURRENCY"
THROTTLE_WAIT_ENV = "AI_COMMS_LOCAL_THROTTLE_WAIT"


class PackagingError(RuntimeError):
    """A deployed function or layer whose code is not one of the built artifacts."""


def unpack(artifact_zip: Path, target: Path, code_sha256: str) -> None:
    """Extract once per code hash; a matching stamp means the folder already holds that code."""
    stamp = target / _STAMP
    if stamp.is_file() and stamp.read_text() == code_sha256:
        return
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with zipfile.ZipFile(artifact_zip) as archive:
        archive.extractall(target)
    stamp.write_text(code_sha256)


class Runner:
    """Discover, unpack, serve. Construct, call ``start()``, use, then ``stop()``.

    ``stats`` lists every ``Invocation`` (cold start, init and duration timings) in order.
    """

    def __init__(
        self,
        endpoints: Endpoints | str,
        build_dir: Path,
        work_dir: Path,
        *,
        region: str = DEFAULT_REGION,
        api_host: str = "127.0.0.1",
        api_port: int = 8080,
        log_dir: Path | None = None,
        pollers: bool = True,
        binary_media_types: dict[str, tuple[str, ...]] | None = None,
        count_calls: bool = False,
        concurrency: int | None = None,
        throttle_wait: float | None = None,
    ) -> None:
        self.endpoints = Endpoints.of(endpoints)
        self.endpoint_url = self.endpoints.aws
        # Execution environments per function without a reserved concurrency of its own.
        self.concurrency = (
            concurrency
            if concurrency is not None
            else int(os.environ.get(CONCURRENCY_ENV) or DEFAULT_CONCURRENCY)
        )
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        # How long an API request waits for a free environment before its 429.
        self.throttle_wait = (
            throttle_wait
            if throttle_wait is not None
            else float(os.environ.get(THROTTLE_WAIT_ENV) or DEFAULT_THROTTLE_WAIT)
        )
        # moto drops an API's binaryMediaTypes; the caller passes them (by API id) from Terraform.
        self._binary_media_types = binary_media_types or {}
        # With count_calls, each function reaches the emulator through its own CallCounter.
        self._count_calls = count_calls
        self.call_counters: dict[str, CallCounter] = {}
        self.build_dir = build_dir.resolve()
        self.work_dir = work_dir.resolve()
        self.region = region
        self.log_dir = log_dir
        self._api_host = api_host
        self._api_port = api_port
        self._want_pollers = pollers
        self.topology: Topology | None = None
        self.workers: dict[str, Worker] = {}
        self.pollers: list[MappingPoller] = []
        self.api: ApiFront | None = None
        self.stats: list[Invocation] = []
        # Every event with its outcome, so tests can see what a function consumed from a queue.
        self.history: list[tuple[Any, Invocation]] = []
        # Invokes refused for want of a free execution environment, by function name.
        self.throttles: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._in_flight = 0
        self._logs: dict[str, FunctionLogs] = {}
        self._apigateway: Any = None
        # Mappings the runner plays, disabled in the emulator meanwhile (UUIDs, enabled again on stop).
        self._taken_over: list[str] = []

    def client(self, service: str) -> Any:
        """A client of the local cloud: DynamoDB's at its endpoint, the rest at the emulator."""
        return self.endpoints.client(service, self.region)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Topology:
        """Discover everything, unpack artifacts, start the API front and the pollers."""
        lambda_client = self.client("lambda")
        # Made here, on one thread: boto3 clients are thread-safe, creating them is not.
        self._apigateway = self.client("apigateway")
        account_id = self.client("sts").get_caller_identity()["Account"]
        topology = discover(lambda_client, self._apigateway, self.region, account_id)
        routes = [
            replace(route, binary_media_types=self._binary_media_types[route.api_id])
            if not any(route.binary_media_types) and route.api_id in self._binary_media_types
            else route
            for route in topology.routes
        ]
        topology = replace(topology, routes=routes)
        self.topology = topology
        manifest = load_manifest(self.build_dir)
        limits = {name: self._concurrency_limit(lambda_client, name) for name in topology.functions}
        self.workers = {
            name: self._prepare(function, manifest, limits[name])
            for name, function in topology.functions.items()
        }
        self.api = ApiFront(
            topology.routes,
            topology.account_id,
            lambda arn, event: self.invoke_arn(arn, event, wait=self.throttle_wait),
            self._key_id,
            host=self._api_host,
            port=self._api_port,
        )
        self.api.start()
        if self._want_pollers:
            sqs, streams = self.client("sqs"), self.client("dynamodbstreams")
            for mapping in topology.mappings:
                limit = limits[topology.function_by_arn(mapping.function_arn).name]
                if mapping.enabled and limit == 0:
                    LOG.warning("%s: its function is reserved to zero concurrency; not polled", mapping.uuid)
                elif mapping.enabled:
                    self._take_over(lambda_client, mapping.uuid)
                    poller = self._poller(mapping, sqs, streams, limit)
                    poller.start()
                    self.pollers.append(poller)
        LOG.info(
            "runner: %d functions, %d SQS and %d DynamoDB stream mappings, %d routes, API at %s",
            len(topology.functions),
            sum(1 for poller in self.pollers if poller.mapping.kind == SQS),
            sum(1 for poller in self.pollers if poller.mapping.kind == DYNAMODB_STREAM),
            len(topology.routes),
            self.api.base_url,
        )
        return topology

    def _poller(self, mapping: MappingRecord, sqs: Any, streams: Any, limit: int) -> MappingPoller:
        if mapping.kind == DYNAMODB_STREAM:
            # One batch per shard at a time (ParallelizationFactor 1), in order.
            return DynamoDBStreamPoller(mapping, streams, sqs, self.region, self.invoke_arn)
        # As many concurrent batches per mapping as the function may run at once.
        return SqsPoller(mapping, sqs, self.region, self.invoke_arn, concurrency=limit)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop pollers first (no new invokes), then the API front, then the workers."""
        for poller in self.pollers:
            poller.stop()
        # One deadline for all of them: a poller waiting for a free environment must not add up.
        deadline = time.monotonic() + timeout
        for poller in self.pollers:
            poller.join(max(deadline - time.monotonic(), 0.0))
        self.pollers = []
        self._hand_back()
        if self.api is not None:
            self.api.stop()
            self.api = None
        # Every function's environments in parallel: each ends within a few seconds, so all do.
        if self.workers:
            with ThreadPoolExecutor(max_workers=len(self.workers)) as pool:
                list(pool.map(Worker.close, self.workers.values()))
        for logs in self._logs.values():
            logs.close()
        for counter in self.call_counters.values():
            counter.stop()

    def _take_over(self, lambda_client: Any, uuid: str) -> None:
        lambda_client.update_event_source_mapping(UUID=uuid, Enabled=False)
        self._taken_over.append(uuid)

    def _hand_back(self) -> None:
        """Enable the mappings again, so the emulator's records read as Terraform left them."""
        if not self._taken_over:
            return
        # Bounded: an emulator that is already gone must not hold the shutdown up.
        quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
        lambda_client = aws_client("lambda", self.endpoint_url, self.region, quick)
        for uuid in self._taken_over:
            try:
                lambda_client.update_event_source_mapping(UUID=uuid, Enabled=True)
            except (ClientError, BotoCoreError):
                LOG.warning("could not enable event source mapping %s again", uuid)
        self._taken_over = []

    # -- invoking ----------------------------------------------------------------------------------

    def invoke(self, function_name: str, event: Any, *, wait: float | None = None) -> Invocation:
        """Invoke by function name, synchronously, as the Invoke API's RequestResponse would.

        Waits up to ``wait`` seconds for a free execution environment (None: until one frees up)
        and raises ``Throttled`` (TooManyRequestsException) past that.
        """
        with self._stats_lock:
            self._in_flight += 1
        try:
            invocation = self.workers[function_name].invoke(event, wait=wait)
        except Throttled:
            with self._stats_lock:
                self.throttles[function_name] += 1
            raise
        finally:
            with self._stats_lock:
                self._in_flight -= 1
        with self._stats_lock:
            self.stats.append(invocation)
            self.history.append((event, invocation))
        return invocation

    @property
    def in_flight(self) -> int:
        """Invocations running or waiting for an execution environment."""
        with self._stats_lock:
            return self._in_flight

    def settled(self, timeout: float = 5.0) -> bool:
        """True when nothing the runner plays can still start work: no invocation in flight, every
        stream read to its end by a pass that began after this call with nothing held back, and
        every queue a function consumes empty (no message waiting, delayed or received and not yet
        deleted). Whatever the functions were doing has then either finished or left a record one of
        those would show. False as soon as one says otherwise, or when a stream pass takes longer
        than ``timeout``."""
        if self.in_flight:
            return False
        streams = [poller for poller in self.pollers if poller.mapping.kind == DYNAMODB_STREAM]
        marks = {id(poller): poller.passes for poller in streams}
        deadline = time.monotonic() + timeout
        # Two passes: the one running now may have begun before the records this call must see.
        while any(poller.passes < marks[id(poller)] + 2 for poller in streams):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        if any(poller.backlog() for poller in streams) or self.in_flight:
            return False
        return not any(poller.backlog() for poller in self.pollers if poller.mapping.kind == SQS)

    def invoke_arn(self, function_arn: str, event: Any, *, wait: float | None = None) -> Invocation:
        assert self.topology is not None
        return self.invoke(self.topology.function_by_arn(function_arn).name, event, wait=wait)

    @property
    def api_base_url(self) -> str:
        assert self.api is not None
        return self.api.base_url

    # -- preparation -------------------------------------------------------------------------------

    def _artifact(self, manifest: dict[str, Artifact], code_sha256: str, what: str) -> Path:
        artifact = manifest.get(code_sha256)
        if artifact is None:
            raise PackagingError(
                f"{what} has CodeSha256 {code_sha256}, which matches no artifact in {self.build_dir}: "
                "rebuild (python scripts/build.py) and re-apply"
            )
        return self.build_dir / artifact.path

    def _concurrency_limit(self, lambda_client: Any, function_name: str) -> int:
        """The function's reserved concurrency when the emulator records one, else the default."""
        try:
            reserved = lambda_client.get_function_concurrency(FunctionName=function_name).get(
                "ReservedConcurrentExecutions"
            )
        except (ClientError, BotoCoreError):  # an emulator without the API: nothing reserved
            LOG.debug("no reserved concurrency readable for %s", function_name, exc_info=True)
            reserved = None
        return self.concurrency if reserved is None else int(reserved)

    def _prepare(self, function: FunctionRecord, manifest: dict[str, Artifact], concurrency: int) -> Worker:
        assert self.topology is not None
        code_zip = self._artifact(manifest, function.code_sha256, f"function {function.name}")
        base = self.work_dir / "lambda" / function.name
        unpack(code_zip, base / "code", function.code_sha256)
        layer_dir = base / "layer"
        shared = self._unpack_layers(function, manifest)
        if layer_dir.is_symlink() or layer_dir.is_file():
            layer_dir.unlink()
        elif layer_dir.exists():
            shutil.rmtree(layer_dir)
        layer_dir.symlink_to(shared, target_is_directory=True)
        logs = self._logs[function.name] = FunctionLogs(function.name, self.log_dir)
        spec = WorkerSpec(
            function_name=function.name,
            function_arn=function.arn,
            timeout_seconds=float(function.timeout),
            code_dir=base / "code",
            layer_python_dir=layer_dir / "python",
            runtime_dir=self.build_dir / "runtime",
            environment=self._environment(function),
        )
        return Worker(spec, logs, concurrency=concurrency)

    def _unpack_layers(self, function: FunctionRecord, manifest: dict[str, Artifact]) -> Path:
        """Extract a function's layers once per distinct set, shared through <fn>/layer symlinks.

        The layer is ~100 MB unpacked and every function of every workspace uses the same one, so
        one extraction per content hash saves seconds and disk on each start.
        """
        assert self.topology is not None
        hashes = [self.topology.layers[arn].code_sha256 for arn in function.layer_arns]
        stamp = "+".join(hashes)
        target = self.work_dir / "lambda" / ".layers" / hashlib.sha256(stamp.encode()).hexdigest()[:16]
        if (target / _STAMP).is_file() and (target / _STAMP).read_text() == stamp:
            return target
        if target.exists():
            shutil.rmtree(target)
        # Extract beside the target and rename: runners in parallel test processes may race here.
        staging = target.with_name(f"{target.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        # Later layers overwrite earlier ones, like Lambda's merge into /opt.
        for arn, code_sha256 in zip(function.layer_arns, hashes, strict=True):
            layer_zip = self._artifact(manifest, code_sha256, f"layer {arn} of {function.name}")
            with zipfile.ZipFile(layer_zip) as archive:
                archive.extractall(staging)
        (staging / _STAMP).write_text(stamp)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging)  # another runner finished the same extraction first
        return target

    def _function_endpoints(self, function_name: str) -> Endpoints:
        if not self._count_calls:
            return self.endpoints
        if function_name not in self.call_counters:
            # Routed by the SigV4 service: DynamoDB (and its streams) to DynamoDB, the rest on.
            routes = {"dynamodb": self.endpoints.dynamodb}
            self.call_counters[function_name] = CallCounter(self.endpoints.aws, routes).start()
        url = self.call_counters[function_name].url
        return Endpoints(url, url)

    def _environment(self, function: FunctionRecord) -> dict[str, str]:
        """The function's variables plus what the Lambda runtime defines; nothing from this process."""
        env = dict(function.environment)
        env.update(self._function_endpoints(function.name).environment())
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "_HANDLER": function.handler,
                "LAMBDA_TASK_ROOT": str(self.work_dir / "lambda" / function.name / "code"),
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "TZ": "UTC",
                "LANG": "en_US.UTF-8",
            }
        )
        return env

    def _key_id(self, api_id: str, stage: str, presented: str) -> str | None:
        """The id of the enabled key of a usage plan of this stage whose value was presented, else
        None. Read at request time, so keys created after start count."""
        apigateway = self._apigateway
        key_ids: set[str] = set()
        for plan in apigateway.get_usage_plans().get("items", []):
            if any(s.get("apiId") == api_id and s.get("stage") == stage for s in plan.get("apiStages", [])):
                for key in apigateway.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
                    key_ids.add(key["id"])
        for key in apigateway.get_api_keys(includeValues=True).get("items", []):
            if key["id"] in key_ids and key.get("enabled", False) and key.get("value") == presented:
                return str(key["id"])
        return None
