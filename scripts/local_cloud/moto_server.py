"""``moto_server`` with the project's fixes of moto 5.2.5 where it differs from AWS in ways the root
module meets (each fix names the difference and its source):

* local_cloud.moto_stream_mappings: event source mappings of DynamoDB streams moto does not hold;
* localstack_host.method_settings: method settings (per-route throttles) of nested resources, the
  same fix the LocalStack plugins apply to LocalStack's moto.

Run as ``python moto_server.py -H 127.0.0.1 -p 5000`` (the arguments of ``moto_server``).
"""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS / "localstack_host")]

from localstack_host.method_settings import patch_stage  # noqa: E402
from moto.apigateway.models import Stage  # noqa: E402
from moto.server import main  # noqa: E402

from local_cloud import moto_stream_mappings  # noqa: E402


def patch() -> None:
    moto_stream_mappings.patch()
    patch_stage(Stage)


if __name__ == "__main__":
    patch()
    main(sys.argv[1:])
