"""Amazon's DynamoDB Local as a child process: the local cloud's DynamoDB and DynamoDB Streams.

``java -Djava.library.path=<dir>/DynamoDBLocal_lib -jar <dir>/DynamoDBLocal.jar -inMemory -sharedDb
-disableTelemetry -port <port>``, from the npm package local_cloud.tools installs. In memory (the
cloud's state dies with it, like the emulator's), one database whatever the credentials and region
(``-sharedDb``: every client of the local cloud sees the same tables), no telemetry calls home.

What it is and is not, measured with 3.3.1: conditions, transactions, local secondary indexes, TTL
settings and streams (DescribeStream, GetShardIterator, GetRecords on the same port) are real and
atomic per item; point-in-time recovery and the tagging API are not implemented, and ARNs read
``arn:aws:dynamodb:ddblocal:000000000000:...`` (see local_cloud.dynamodb_front, which fills both
gaps). It has no option to bind one interface: it listens on every interface of the machine on a
random port, and clients reach it through the front on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

from local_cloud.processes import HOST, ChildServer, Managed, answers, free_port
from local_cloud.tools import DYNAMODB_LOCAL_JAR, DYNAMODB_LOCAL_LIB, dynamodb_local_dir, java_executable

# A JVM on a busy 2-core machine takes a few seconds; more means something is wrong.
START_TIMEOUT = 60.0


def command(port: int, folder: Path | None = None) -> list[str]:
    folder = folder or dynamodb_local_dir()
    return [
        str(java_executable()),
        f"-Djava.library.path={folder / DYNAMODB_LOCAL_LIB}",
        "-jar",
        str(folder / DYNAMODB_LOCAL_JAR),
        "-inMemory",
        "-sharedDb",
        "-disableTelemetry",
        "-port",
        str(port),
    ]


class DynamoDBLocal(Managed):
    """Start on a free (or given) port, wait until it answers, stop. ``url`` is its own address."""

    def __init__(self, port: int = 0, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._server = ChildServer("DynamoDB Local", log_file)

    def start(self, timeout: float = START_TIMEOUT) -> DynamoDBLocal:
        # Unsigned requests get a 400 MissingAuthenticationToken: any answer means it serves.
        self._server.start(command(self.port), lambda: answers(self.url), timeout)
        return self

    def stop(self) -> None:
        self._server.stop()
