"""Where the local cloud's AWS services answer: the emulator, and DynamoDB Local for DynamoDB.

On moto the two differ (moto, and the DynamoDB front before DynamoDB Local); on LocalStack both are
LocalStack's port. Every client the local cloud makes (Terraform's provider, the functions, the
runner, the tests, the ops CLI) takes DynamoDB's endpoint from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

# Both signed as "dynamodb"; the SDKs name their endpoints apart.
DYNAMODB_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})


def aws_client(service: str, endpoint_url: str, region: str, config: Config | None = None) -> Any:
    """A boto3 client of the local cloud at ``endpoint_url``, with the fake credentials it accepts."""
    # boto3's stubs only accept literal service names; this helper serves several.
    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - the emulator accepts any credentials
        config=config,
    )


@dataclass(frozen=True)
class Endpoints:
    aws: str
    dynamodb: str

    @classmethod
    def of(cls, value: Endpoints | str) -> Endpoints:
        """A single URL serves every service (an emulator with DynamoDB of its own)."""
        return value if isinstance(value, Endpoints) else cls(value, value)

    def for_service(self, service: str) -> str:
        return self.dynamodb if service in DYNAMODB_SERVICES else self.aws

    def client(self, service: str, region: str, config: Config | None = None) -> Any:
        return aws_client(service, self.for_service(service), region, config)

    def environment(self) -> dict[str, str]:
        """The SDK variables pointing a process at these endpoints (service ones win over the global)."""
        return {
            "AWS_ENDPOINT_URL": self.aws,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb,
        }
