"""What ``make local`` does after the apply: seed data, then tell the user where everything is.

For now it only describes: .local/endpoints.json lists the emulator and each workspace's local API
URLs (the Terraform output ``api_invoke_url`` names an execute-api host the emulator does not serve,
so the local URLs are derived from the runner's port and the stage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from local_cloud.cloud import LocalCloud

ENDPOINTS_FILE = "endpoints.json"


def describe(cloud: LocalCloud) -> dict[str, Any]:
    workspaces: dict[str, Any] = {}
    for name, outputs in cloud.outputs.items():
        base = cloud.api_base_url(name)
        channels = sorted((outputs.get("webhook_urls") or {}).keys())
        workspaces[name] = {
            "api_base_url": base,
            "webhook_urls": {channel: f"{base}/{channel}" for channel in channels},
            "outputs": outputs,
        }
    first: dict[str, Any] = next(iter(workspaces.values()), {})
    return {
        "emulator_url": cloud.endpoint_url,
        "api_base_url": first.get("api_base_url"),
        "webhook_urls": first.get("webhook_urls", {}),
        "workspaces": workspaces,
    }


def seed_and_describe(cloud: LocalCloud, seed: bool = True) -> Path:
    """Seed the demo data when ``seed`` (nothing to seed yet); write .local/endpoints.json; return it."""
    target = cloud.work_dir / ENDPOINTS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(describe(cloud), indent=2, sort_keys=True) + "\n")
    return target
