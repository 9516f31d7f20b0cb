"""Read what Terraform deployed back from the emulator: functions, layers, mappings, API routes.

The runner plays the Lambda service from these records alone (never from Terraform files), so a
wrong handler string, environment, layer, mapping or route shows up locally the way it would in AWS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from local_cloud.event_filter import RecordFilter

# The integration URI of an AWS_PROXY Lambda integration wraps the function ARN.
_LAMBDA_URI_MARKER = ":lambda:path/2015-03-31/functions/"
_STREAM_ARN = re.compile(r"arn:aws:dynamodb:[^:]+:\d{12}:table/[^/]+/stream/.+")
# Sources the runner plays; other mappings (Kinesis, Kafka, ...) stay with the emulator.
SQS, DYNAMODB_STREAM = "sqs", "dynamodb"


def source_kind(arn: str) -> str | None:
    if arn.startswith("arn:aws:sqs:"):
        return SQS
    if _STREAM_ARN.fullmatch(arn):
        return DYNAMODB_STREAM
    return None


@dataclass(frozen=True)
class FunctionRecord:
    name: str
    arn: str
    handler: str
    runtime: str
    environment: dict[str, str]
    timeout: int
    memory_size: int
    code_sha256: str
    layer_arns: tuple[str, ...]


@dataclass(frozen=True)
class LayerRecord:
    arn: str
    code_sha256: str


@dataclass(frozen=True)
class MappingRecord:
    """One event source mapping with the settings the runner honours (defaults: the service's)."""

    uuid: str
    source_arn: str
    function_arn: str
    batch_size: int
    report_batch_item_failures: bool
    enabled: bool
    filters: RecordFilter = field(default_factory=RecordFilter)
    batching_window_seconds: float = 0.0
    # Streams only: where to begin, and what to do with a batch that keeps failing.
    starting_position: str = "TRIM_HORIZON"
    bisect_on_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    on_failure_arn: str | None = None

    @property
    def kind(self) -> str | None:
        return source_kind(self.source_arn)


@dataclass(frozen=True)
class RouteRecord:
    api_id: str
    api_name: str
    stage: str
    resource_path: str
    method: str
    function_arn: str
    api_key_required: bool
    binary_media_types: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    account_id: str
    region: str
    functions: dict[str, FunctionRecord]
    layers: dict[str, LayerRecord]
    mappings: list[MappingRecord]
    routes: list[RouteRecord]

    def function_by_arn(self, arn: str) -> FunctionRecord:
        # Qualified ARNs (":$LATEST", ":alias") point at the same code here.
        base = ":".join(arn.split(":")[:7])
        for function in self.functions.values():
            if function.arn == base:
                return function
        raise KeyError(f"no deployed function {arn}")


def _paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key, []))
    return items


def discover_functions(lambda_client: Any) -> dict[str, FunctionRecord]:
    functions: dict[str, FunctionRecord] = {}
    for item in _paginate(lambda_client, "list_functions", "Functions"):
        functions[item["FunctionName"]] = FunctionRecord(
            name=item["FunctionName"],
            arn=item["FunctionArn"],
            handler=item.get("Handler", ""),
            runtime=item.get("Runtime", ""),
            environment=dict(item.get("Environment", {}).get("Variables", {})),
            timeout=int(item.get("Timeout", 3)),
            memory_size=int(item.get("MemorySize", 128)),
            code_sha256=item["CodeSha256"],
            layer_arns=tuple(layer["Arn"] for layer in item.get("Layers", [])),
        )
    return functions


def discover_layers(lambda_client: Any, arns: set[str]) -> dict[str, LayerRecord]:
    """Look each layer version up by name + number: moto has no GetLayerVersionByArn."""
    layers: dict[str, LayerRecord] = {}
    for arn in sorted(arns):
        name, version = arn.split(":")[6], int(arn.split(":")[7])
        content = lambda_client.get_layer_version(LayerName=name, VersionNumber=version)["Content"]
        layers[arn] = LayerRecord(arn=arn, code_sha256=content["CodeSha256"])
    return layers


def _setting(item: dict[str, Any], name: str, default: Any) -> Any:
    # Emulators leave unset settings out, or answer null for them.
    value = item.get(name)
    return default if value is None else value


def mapping_record(item: dict[str, Any]) -> MappingRecord:
    """A mapping's configuration as GetEventSourceMapping answers it."""
    source = item.get("EventSourceArn", "")
    stream = source_kind(source) == DYNAMODB_STREAM
    on_failure = (item.get("DestinationConfig") or {}).get("OnFailure") or {}
    return MappingRecord(
        uuid=item["UUID"],
        source_arn=source,
        function_arn=item["FunctionArn"],
        batch_size=int(_setting(item, "BatchSize", 100 if stream else 10)),
        report_batch_item_failures="ReportBatchItemFailures" in (item.get("FunctionResponseTypes") or []),
        enabled=item.get("State", "Enabled") in {"Enabled", "Enabling", "Creating", "Updating"},
        filters=RecordFilter.parse(item.get("FilterCriteria")),
        batching_window_seconds=float(_setting(item, "MaximumBatchingWindowInSeconds", 0)),
        starting_position=str(_setting(item, "StartingPosition", "TRIM_HORIZON")),
        bisect_on_error=bool(_setting(item, "BisectBatchOnFunctionError", False)),
        maximum_retry_attempts=int(_setting(item, "MaximumRetryAttempts", -1)),
        maximum_record_age_seconds=int(_setting(item, "MaximumRecordAgeInSeconds", -1)),
        on_failure_arn=on_failure.get("Destination") or None,
    )


def discover_mappings(lambda_client: Any) -> list[MappingRecord]:
    """The SQS and DynamoDB stream mappings; filter patterns Lambda would refuse raise here.

    Each is read again by UUID: LocalStack's list leaves settings out that GetEventSourceMapping has.
    """
    return [
        mapping_record(lambda_client.get_event_source_mapping(UUID=item["UUID"]))
        for item in _paginate(lambda_client, "list_event_source_mappings", "EventSourceMappings")
        if source_kind(item.get("EventSourceArn", "")) is not None
    ]


def function_arn_from_uri(uri: str) -> str | None:
    if _LAMBDA_URI_MARKER not in uri:
        return None
    return uri.split(_LAMBDA_URI_MARKER, 1)[1].removesuffix("/invocations")


def discover_routes(apigateway: Any) -> list[RouteRecord]:
    routes: list[RouteRecord] = []
    for api in _paginate(apigateway, "get_rest_apis", "items"):
        stages = [stage["stageName"] for stage in apigateway.get_stages(restApiId=api["id"]).get("item", [])]
        resources = _paginate(apigateway, "get_resources", "items", restApiId=api["id"], embed=["methods"])
        for resource in resources:
            for method, details in resource.get("resourceMethods", {}).items():
                integration = details.get("methodIntegration") or apigateway.get_integration(
                    restApiId=api["id"], resourceId=resource["id"], httpMethod=method
                )
                if integration.get("type") != "AWS_PROXY":
                    continue
                function_arn = function_arn_from_uri(integration.get("uri", ""))
                if function_arn is None:
                    continue
                routes.extend(
                    RouteRecord(
                        api_id=api["id"],
                        api_name=api.get("name", ""),
                        stage=stage,
                        resource_path=resource["path"],
                        method=method,
                        function_arn=function_arn,
                        api_key_required=bool(details.get("apiKeyRequired", False)),
                        binary_media_types=tuple(api.get("binaryMediaTypes", [])),
                    )
                    for stage in stages
                )
    return routes


def discover(lambda_client: Any, apigateway: Any, region: str, account_id: str) -> Topology:
    functions = discover_functions(lambda_client)
    layer_arns = {arn for function in functions.values() for arn in function.layer_arns}
    return Topology(
        account_id=account_id,
        region=region,
        functions=functions,
        layers=discover_layers(lambda_client, layer_arns),
        mappings=discover_mappings(lambda_client),
        routes=discover_routes(apigateway),
    )
