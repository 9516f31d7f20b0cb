"""The ``record-only`` Lambda runtime executor: functions become Active, nothing ever runs here."""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from localstack_host import require_supported_version

NAME = "record-only"
_REFUSAL = (
    "LocalStack runs with LAMBDA_RUNTIME_EXECUTOR=record-only: functions are recorded, never "
    "executed here. The local cloud's runner executes them (scripts/local_cloud/runner.py)."
)


class RecordOnlyExecutor(RuntimeExecutor):
    """Accepts every function version and refuses to start an execution environment."""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to prepare: no image, no unpacked code. The version becomes Active."""

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing was prepared."""

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    def start(self, env_vars: dict[str, str]) -> None:
        raise LambdaRuntimeException(_REFUSAL)

    def stop(self) -> None:
        """Never started."""

    def get_address(self) -> str:
        raise LambdaRuntimeException(_REFUSAL)

    def get_endpoint_from_executor(self) -> str:
        raise LambdaRuntimeException(_REFUSAL)

    def get_runtime_endpoint(self) -> str:
        raise LambdaRuntimeException(_REFUSAL)

    def invoke(self, payload: dict[str, Any]) -> InvocationResult:
        raise LambdaRuntimeException(_REFUSAL)

    def get_logs(self) -> str:
        return ""


class RecordOnlyExecutorPlugin(RuntimeExecutorPlugin):
    name = NAME

    def load(self, *args: Any, **kwargs: Any) -> type[RuntimeExecutor]:
        require_supported_version()
        return RecordOnlyExecutor
