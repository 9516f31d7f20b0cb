"""A Lambda context object with what Powertools reads."""

from dataclasses import dataclass


@dataclass
class FakeContext:
    function_name: str = "unit-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:unit-function"
    aws_request_id: str = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000
