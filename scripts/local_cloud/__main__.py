"""``python -m local_cloud up``: the engine on this machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from local_cloud.cloud import EMULATOR_ENV, RUNNER_EMULATORS, LocalCloud, runner_emulator_kind
from local_cloud.demo import Providers, describe, seed_demo, write_endpoints
from local_cloud.terraform import LOCAL_TFVARS, Workspace


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_cloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="emulator + terraform apply + runner, until Ctrl-C")
    up.add_argument("--workspace", default="local", help="Terraform workspace (also the API stage)")
    up.add_argument("--tfvars", default=LOCAL_TFVARS, help="file under terraform/workspaces/")
    up.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="extra -var")
    up.add_argument("--api-port", type=int, default=int(os.environ.get("AI_COMMS_API_PORT", "8080")))
    up.add_argument(
        "--emulator",
        choices=RUNNER_EMULATORS,
        default=None,
        help=f"the AWS emulator (env {EMULATOR_ENV}, default {RUNNER_EMULATORS[0]}), DynamoDB Local under it",
    )
    up.add_argument(
        "--emulator-port", type=int, default=int(os.environ.get("AI_COMMS_EMULATOR_PORT", "5000"))
    )
    up.add_argument(
        "--dynamodb-port",
        type=int,
        default=int(os.environ.get("AI_COMMS_DYNAMODB_PORT", "5001")),
        help="moto only: the DynamoDB endpoint (LocalStack serves DynamoDB on its own port)",
    )
    up.add_argument(
        "--reuse-emulator",
        action="store_true",
        help="adopt an emulator already on the port (moto: with its DynamoDB on --dynamodb-port)",
    )
    up.add_argument("--no-seed", action="store_true", help="skip the demo data")
    return parser.parse_args(argv)


def up(args: argparse.Namespace) -> int:
    pairs = [str(item).split("=", 1) for item in args.var]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit("--var expects NAME=VALUE")
    providers = Providers().start()
    extra = providers.terraform_vars() + tuple((name, value) for name, value in pairs)
    workspace = Workspace(args.workspace, args.tfvars, extra)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # Both explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    try:
        kind = runner_emulator_kind(args.emulator)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    cloud = LocalCloud(emulator=kind)
    try:
        cloud.start(
            args.emulator_port,
            args.api_port,
            [workspace],
            reuse_emulator=args.reuse_emulator,
            dynamodb_port=args.dynamodb_port,
        )
        assert cloud.runner is not None and cloud.runner.topology is not None
        topology = cloud.runner.topology
        print(f"emulator:   {cloud.emulator_kind} at {cloud.endpoint_url}", flush=True)
        print(f"dynamodb:   DynamoDB Local at {cloud.dynamodb_endpoint_url}", flush=True)
        print(f"apply:      {cloud.terraform.apply_seconds.get(workspace.name, 0.0):.1f} s", flush=True)
        print(
            f"runner:     {len(topology.functions)} functions, {len(cloud.runner.pollers)} event source "
            f"mappings, {len(topology.routes)} routes",
            flush=True,
        )
        tenant = None if args.no_seed else seed_demo(cloud, workspace.name, providers)
        described = describe(cloud, providers, tenant)
        endpoints = write_endpoints(cloud, described)
        print(f"openai:     {described['openai_fake_url'] or 'api.openai.com (OPENAI_API_KEY)'}", flush=True)
        print(f"twilio:     {described['twilio_fake_url'] or 'api.twilio.com (TWILIO_*)'}", flush=True)
        print(f"api:        {described['api_base_url']}", flush=True)
        for channel, url in described["webhook_urls"].items():
            print(f"webhook:    {channel} -> {url}", flush=True)
        if described.get("api_key"):
            print(f"initiate:   {described['initiate_url']} (x-api-key in endpoints.json)", flush=True)
        print(f"endpoints:  {endpoints}", flush=True)
        print("try:        .venv/bin/python scripts/send_webhook.py 'Hi, where is my order?'", flush=True)
        demo_tel = (described.get("demo") or {}).get("customer_tel")
        if demo_tel:
            print(f"then:       .venv/bin/python -m ops --local conversation show {demo_tel}", flush=True)
        print(f"ready in {time.monotonic() - started:.1f} s; Ctrl-C to stop", flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        print("stopping...", flush=True)
        cloud.stop()
        providers.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # boto's own chatter would drown the function logs.
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args(argv)
    if args.command == "up":
        return up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
