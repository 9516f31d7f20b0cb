"""Where the local cloud's AWS services answer: the emulator, and DynamoDB Local for DynamoDB.

On moto the two differ (moto, and the DynamoDB front before DynamoDB Local); on LocalStack both are
LocalStack's port. Every client the local cloud makes (Terraform's provider, the functions, the
runner, the tests, the ops CLI) takes DynamoDB's endpoint from here.
"""

from __future__ import annotations

from dataclasses import dataclass

# Both signed as "dynamodb"; the SDKs name their endpoints apart.
DYNAMODB_SERVICES = frozenset({"dynamodb", "dynamodbstreams"})


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

    def environment(self) -> dict[str, str]:
        """The SDK variables pointing a process at these endpoints (service ones win over the global)."""
        return {
            "AWS_ENDPOINT_URL": self.aws,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb,
        }
