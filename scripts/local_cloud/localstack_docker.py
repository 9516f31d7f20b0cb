"""A LocalStack the user runs in Docker, which executes the functions itself (``EMULATOR=localstack-docker``).

Unlike the host emulators, nothing here starts or stops it: ``start`` adopts the LocalStack at
``LOCALSTACK_ENDPOINT`` (default http://127.0.0.1:4566) once its health answers with Lambda among
the services, and the local cloud then runs no runner (LocalStack's own event source mappings,
Lambda containers and API Gateway data plane play those hops) and destroys its workspaces when it
stops, since the user's LocalStack outlives the run. The functions reach AWS through the
``AWS_ENDPOINT_URL`` LocalStack sets in every Lambda container, and the fakes through an address the
containers can reach (``AI_COMMS_FAKES_HOST``, e.g. the Docker bridge's gateway). Step by step in
the README's Tests section.

The API's URL must be known before the apply (the senders' StatusCallback and the URL Twilio signs):
the root module's ``api_tags`` gives the REST API LocalStack's ``_custom_id_`` tag, so the stage is
served at ``<endpoint>/_aws/execute-api/<id>/<stage>``.
"""

from __future__ import annotations

import logging
import os
import re
import time

from local_cloud.emulator import EmulatorBase
from local_cloud.localstack import health

LOG = logging.getLogger(__name__)
ENDPOINT_ENV = "LOCALSTACK_ENDPOINT"
DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
CUSTOM_ID_TAG = "_custom_id_"


def api_id_for(workspace: str) -> str:
    """The REST API id a workspace asks LocalStack for: its name, lower case letters and digits."""
    return re.sub(r"[^a-z0-9]", "", workspace.lower()) or "api"


def execute_api_url(endpoint: str, api_id: str, stage: str) -> str:
    """LocalStack's path-style URL of a REST API stage."""
    return f"{endpoint.rstrip('/')}/_aws/execute-api/{api_id}/{stage}"


class LocalStackDockerEmulator(EmulatorBase):
    """Adopt the LocalStack at ``url`` (``LOCALSTACK_ENDPOINT``); never start or stop it."""

    name = "localstack-docker"
    executes_functions = True

    def __init__(self, url: str | None = None) -> None:
        super().__init__(port=0, reuse=True)
        self.url = (url or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")

    def start(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        answer = health(self.url)
        while answer is None and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = health(self.url)
        if answer is None:
            raise RuntimeError(
                f"no LocalStack answers at {self.url}/_localstack/health: start it in Docker first "
                f"(README, Tests) or set {ENDPOINT_ENV}"
            )
        services = answer.get("services")
        if not isinstance(services, dict) or "lambda" not in services:
            raise RuntimeError(f"the LocalStack at {self.url} offers no Lambda service: {answer}")
        self.adopted = True
        LOG.info("using LocalStack %s at %s (it runs the functions)", answer.get("version"), self.url)

    def stop(self) -> None:
        """Nothing to stop: the LocalStack belongs to the user."""
