"""S3 objects under this LocalStack's own filesystem, fixed for LocalStack 2026.3.0.

The S3 provider keeps its objects under the hard-coded ``DEFAULT_S3_TMP_DIR``
(``/tmp/localstack-s3-storage``, services/s3/provider.py), whatever ``FILESYSTEM_ROOT`` or
``TMPDIR`` say: every LocalStack on the host shares that folder (Lambda keeps each function's code
there, in the bucket ``awslambda-<region>-tasks``) and leaves it behind. The hook points it at
``<dirs.tmp>/s3-storage`` before the provider is created (providers load on first use).
"""

from __future__ import annotations

import os

from localstack import config
from localstack.runtime import hooks

from localstack_host import require_supported_version


def apply() -> None:
    # Imported once the version is known to be the one this patch was written for.
    from localstack.services.s3 import provider  # noqa: PLC0415

    provider.DEFAULT_S3_TMP_DIR = os.path.join(config.dirs.tmp, "s3-storage")


@hooks.on_infra_start()
def keep_s3_storage_in_filesystem_root() -> None:
    require_supported_version()
    apply()
