"""`make bench`: the engine's figures on the local cloud, written to bench/results.json and as a table.

One emulator, one `terraform apply` (workspace "bench": whatsapp with a zero debounce window so
latencies exclude it, sms with a 3 s window for the burst figure), the fakes with zero latency and
the runner with per-function call counters. Each figure stands next to its baseline: cold starts
next to the bare import time of the same dependencies in a fresh process, AI calls per burst next
to the one-call-per-message design, reply latency next to a fixed 30 s delay plus polling; at
message 1, 100 and 1,000 of one conversation (bench_long_conversation) the DynamoDB write units of
an inbound message and of a reply next to the same writes on the old one-item layout, the reply's
AI input tokens with compaction next to the whole history, the warm webhook next to message 1; the
consent checks of each send path (their calls and time) next to the path without them; each
function's deployed size next to Lambda's limit. Times on this shared 2-core machine are noisy:
read ratios and counts first. The summary table at the end (also "summary" in the JSON) holds the
headline figures, each with its baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench_long_conversation import LongConversation
from bench_stats import percentile, progress, summary

from ai_comms.providers.twilio_signature import sign
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake
from local_cloud.artifacts import load_manifest
from local_cloud.bench_summary import render, summary_rows
from local_cloud.call_tap import Call, CallTap, dynamodb_reader, extra_calls, key_schemas
from local_cloud.cloud import LocalCloud, runner_emulator_kind
from local_cloud.load import Customer, account, drive, expected_counts, plan_load, settled
from local_cloud.seeding import SeededTenant, open_conversation, seed_tenant
from local_cloud.terraform import Workspace
from local_cloud.worker import Invocation

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "bench"
CHANNELS = (
    '{whatsapp={debounce_seconds=0,address_prefix="whatsapp:"},sms={debounce_seconds=3,address_prefix=""}}'
)
SEEDS_REPLY_DELAY_S = 30.0  # the seeds' fixed delay before answering, plus a polling loop
# Functions whose handler import is timed on its own (the others' is part of their cold-start figures).
IMPORT_ONLY = ("initiate_conversation", "status_callback", "outbox_relay", "conversations_api")
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
PHASES = ("webhook", "replies", "outbound", "imports", "long", "load")

# Run inside a fresh interpreter with only code + layer + runtime on sys.path, like a Lambda sandbox.
_IMPORT_PROBE = r"""
import json, sys, time
code, layer, runtime, module, mode = sys.argv[1:6]
sys.path[:0] = [code, layer, runtime]
if mode == "handler":
    before = set(sys.modules)
    start = time.perf_counter()
    __import__(module)
    elapsed = time.perf_counter() - start
    own = ("ai_comms", module)
    third = [n for n, m in list(sys.modules.items()) if n not in before and not n.startswith(own)
             and getattr(m, "__file__", None) and m.__file__.startswith((layer, runtime))]
    print(json.dumps({"ms": elapsed * 1000, "modules": third}))
else:
    names = json.loads(sys.stdin.read())
    start = time.perf_counter()
    for name in names:
        __import__(name)
    print(json.dumps({"ms": (time.perf_counter() - start) * 1000}))
"""


class Bench:
    def __init__(self, cloud: LocalCloud, openai: OpenAIFake, twilio: TwilioFake) -> None:
        self.cloud = cloud
        self.openai = openai
        self.twilio = twilio
        assert cloud.runner is not None
        self.runner = cloud.runner
        self.outputs = cloud.outputs[WORKSPACE]
        self.api = cloud.api_base_url(WORKSPACE)
        self.tenant = seed_tenant(
            self.runner.client,
            self.outputs,
            company_id="bench",
            company_numbers={"whatsapp": "+14155550100", "sms": "+14155550101"},
            template={
                "content_sid": "HX" + "1" * 32,
                "template_variables": {"1": "first name", "2": "reason"},
            },
        )
        twilio.add_account(self.tenant.account_sid, self.tenant.auth_token)  # the fake knows only these
        self.api_key = self._api_key()
        # Every function's calls, timed and (while metering) with the items each write touches.
        dynamodb = self.runner.client("dynamodb")
        self.consent_table = str(self.outputs["tables"]["consent"])
        schemas = key_schemas(dynamodb, [str(t) for t in self.outputs["tables"].values()])
        self.taps: dict[str, CallTap] = {}
        for short, name in self.outputs["functions"].items():
            counter = self.runner.call_counters.get(str(name))
            if counter is not None:
                self.taps[short] = CallTap(short, dynamodb_reader(dynamodb), schemas)
                counter.observe(self.taps[short])

    # -- plumbing ----------------------------------------------------------------------------------

    def function(self, short: str) -> str:
        return str(self.outputs["functions"][short])

    def post(self, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, float]:
        request = urllib.request.Request(f"{self.api}{path}", data=data, headers=headers, method="POST")  # noqa: S310
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status = response.status
                response.read()
        except urllib.error.HTTPError as error:
            status = error.code
        return status, (time.perf_counter() - start) * 1000

    def webhook(
        self, tel: str, body: str, channel: str = "whatsapp", tenant: SeededTenant | None = None
    ) -> tuple[int, float]:
        tenant = tenant or self.tenant
        prefix = "whatsapp:" if channel == "whatsapp" else ""
        form = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": tenant.account_sid,
            "From": prefix + tel,
            "To": prefix + tenant.company_numbers[channel],
            "Body": body,
            "NumMedia": "0",
        }
        url = f"{self.api}/{channel}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(tenant.auth_token, url, form),
        }
        if channel == "whatsapp":
            # Twilio knows the customer wrote: WhatsApp's 24-hour window is open for the free-form reply.
            self.twilio.customer_wrote(form["From"], form["To"])
        return self.post(f"/{channel}", urlencode(form).encode(), headers)

    def conversation(self, channel: str = "whatsapp") -> str:
        tel = "+4477009" + str(uuid.uuid4().int)[:5]
        open_conversation(self.runner.client, self.outputs, self.tenant, tel, channel=channel)
        return tel

    def sent_to(self, tel: str) -> list[dict[str, Any]]:
        return [m for m in self.twilio.messages() if str(m.get("to", "")).endswith(tel)]

    def wait(self, probe: Callable[..., Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.01)
        raise TimeoutError("bench: condition not met in time")

    def invocations(self, function: str, since: int) -> list[Invocation]:
        return [i for i in self.runner.stats[since:] if i.function_name == function]

    def is_consent_check(self, call: Call) -> bool:
        """ConsentRepository.is_opted_out: a GetItem of the consent table (the check before a send)."""
        return call.operation == "dynamodb.GetItem" and call.table == self.consent_table

    def consent_cost(self, calls: list[Call], latencies: dict[str, float]) -> dict[str, Any]:
        """The consent checks of a send path: AWS calls and latency with them, and without them."""
        cost = extra_calls(calls, self.is_consent_check, latencies, len(latencies))
        return {
            "aws_calls_per_send": cost.calls_per_send,
            "baseline_aws_calls_per_send_without_checks": round(cost.calls_per_send - cost.extra_per_send, 2),
            "consent_checks_per_send": cost.extra_per_send,
            "consent_checks_by_operation": cost.extra_by_operation,
            "consent_checks_by_function": cost.extra_by_function,
            "consent_check_ms": summary(cost.extra_ms) if cost.extra_ms else None,
            "path_ms": summary(list(latencies.values())),
            "baseline_path_ms_without_checks": summary(cost.path_ms_without),
        }

    def calls(self, function: str) -> int:
        counter = self.runner.call_counters.get(function)
        return sum(counter.snapshot().values()) if counter else 0

    def _api_key(self) -> str | None:
        ids = self.outputs.get("api_key_ids") or {}
        if not ids:
            return None
        apigateway = self.runner.client("apigateway")
        return str(apigateway.get_api_key(apiKey=next(iter(ids.values())), includeValue=True)["value"])

    # -- cold starts -------------------------------------------------------------------------------

    def bare_import_ms(self, short: str, repeats: int = 5) -> dict[str, float]:
        """Handler import vs importing only its third-party modules, each in a fresh interpreter."""
        spec = self.runner.workers[self.function(short)].spec
        env = {**spec.environment, "PYTHONDONTWRITEBYTECODE": "1"}
        args = [str(spec.code_dir), str(spec.layer_python_dir), str(spec.runtime_dir), "handler"]
        handler_ms, bare_ms = [], []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-I", "-S", "-c", _IMPORT_PROBE, *args, "handler"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            measured = json.loads(out.stdout)
            handler_ms.append(measured["ms"])
            bare = subprocess.run(
                [sys.executable, "-I", "-S", "-c", _IMPORT_PROBE, *args, "bare"],
                env=env,
                input=json.dumps(measured["modules"]),
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            bare_ms.append(json.loads(bare.stdout)["ms"])
        return {
            "handler_import_ms_p50": round(statistics.median(handler_ms), 1),
            "bare_dependency_import_ms_p50": round(statistics.median(bare_ms), 1),
            "own_code_share": round(1 - statistics.median(bare_ms) / statistics.median(handler_ms), 3),
        }

    def cold_starts(self, short: str, trigger: Callable[[], object], repeats: int = 5) -> dict[str, Any]:
        """Fresh worker process each time: spawn + import (init) + the first invocation."""
        name = self.function(short)
        firsts: list[Invocation] = []
        for _ in range(repeats):
            self.runner.workers[name].stop()
            since = len(self.runner.stats)
            trigger()
            first = self.wait(lambda since=since: [i for i in self.invocations(name, since) if i.cold_start])[
                0
            ]
            firsts.append(first)
        init = [i.init_ms or 0.0 for i in firsts]
        return {
            "cold_init_ms_p50": round(statistics.median(init), 1),
            "cold_first_call_ms_p50": round(statistics.median(i.duration_ms for i in firsts), 1),
            "cold_total_ms_p50": round(
                statistics.median((i.init_ms or 0.0) + i.duration_ms for i in firsts), 1
            ),
            "process_start_to_ready_ms_p50": round(statistics.median(i.startup_ms or 0.0 for i in firsts), 1),
            **self.bare_import_ms(short),
        }

    # -- figures -----------------------------------------------------------------------------------

    def webhook_figures(self, warm: int) -> dict[str, Any]:
        tel = self.conversation()
        cold = self.cold_starts("twilio_webhook", lambda: self.webhook(tel, "cold"))
        name = self.function("twilio_webhook")
        before_calls, since = self.calls(name), len(self.runner.stats)
        latencies = []
        for index in range(warm):
            status, ms = self.webhook(tel, f"warm {index}")
            assert status == 200, status
            latencies.append(ms)
        handler = [i.duration_ms for i in self.invocations(name, since)]
        return {
            "cold_start": cold,
            "warm_http_ms": summary(latencies),
            "warm_handler_ms": summary(handler),
            "aws_calls_per_warm_webhook": round((self.calls(name) - before_calls) / warm, 2),
            "aws_calls_by_operation": dict(self.runner.call_counters[name].snapshot()),
        }

    def reply_figures(self, replies: int, bursts: int) -> dict[str, Any]:
        name = self.function("reply_processor")
        cold = self.cold_starts("reply_processor", lambda: self.webhook(self.conversation(), "cold start"))
        time.sleep(2)  # let the cold-start replies finish before counting calls
        before_calls = self.calls(name)
        mark = self.taps["reply_processor"].mark()
        by_tel: dict[str, float] = {}
        for index in range(replies):
            tel = self.conversation()
            start = time.perf_counter()
            self.webhook(tel, f"question {index}")
            self.wait(lambda tel=tel: self.sent_to(tel))
            by_tel[tel] = (time.perf_counter() - start) * 1000
        time.sleep(1)  # the reply's final write comes right after its send
        latencies = list(by_tel.values())
        calls_per_reply = round((self.calls(name) - before_calls) / replies, 2)
        consent = self.consent_cost(self.taps["reply_processor"].since(mark), by_tel)
        ai_calls = []
        for _ in range(bursts):
            tel = self.conversation("sms")
            before = len([r for r in self.openai.requests.snapshot() if r.get("path") == "/v1/responses"])
            for index in range(5):
                self.webhook(tel, f"burst message {index}", channel="sms")
                time.sleep(0.2)
            self.wait(lambda tel=tel: self.sent_to(tel), timeout=60)
            time.sleep(4)  # anything a second call would have sent arrives by now
            after = len([r for r in self.openai.requests.snapshot() if r.get("path") == "/v1/responses"])
            ai_calls.append(after - before)
        return {
            "cold_start": cold,
            "webhook_to_reply_ms": summary(latencies),
            "baseline_seeds_reply_ms": SEEDS_REPLY_DELAY_S * 1000,
            "latency_ratio_vs_seeds_p50": round(percentile(latencies, 0.5) / (SEEDS_REPLY_DELAY_S * 1000), 4),
            "aws_calls_per_single_message_reply": calls_per_reply,
            "aws_calls_by_operation": dict(self.runner.call_counters[name].snapshot()),
            "ai_calls_per_5_message_burst": ai_calls,
            "baseline_seeds_ai_calls_per_5_message_burst": 5,
            "consent": consent,
        }

    def initiate(self, tel: str | None = None) -> tuple[int, float]:
        body = {
            "company_id": self.tenant.company_id,
            "project_id": self.tenant.project_id,
            "channel_method": "whatsapp",
            "request_id": "bench-" + uuid.uuid4().hex,
            "recipient": {"tel": tel or "+4477009" + str(uuid.uuid4().int)[:5], "first_name": "Ada"},
            "project_data": {"reason": "your order shipped"},
        }
        headers = {"Content-Type": "application/json", "x-api-key": self.api_key or ""}
        return self.post("/initiate-conversation", json.dumps(body).encode(), headers)

    def outbound_figures(self, warm: int, sends: int) -> dict[str, Any]:
        if self.api_key is None:
            return {"skipped": "no API key output: the outbound route is not deployed"}
        latencies = []
        backlog = []
        for _ in range(warm):
            tel = "+4477009" + str(uuid.uuid4().int)[:5]
            status, ms = self.initiate(tel)
            assert status == 202, status
            latencies.append(ms)
            backlog.append(tel)
        # The sender works through those first, so the timed sends below (and their calls) are alone.
        waiting = set(backlog)
        try:
            self.wait(lambda: {str(m.get("to", ""))[-13:] for m in self.twilio.messages()} >= waiting, 180)
        except TimeoutError:
            progress("outbound: some warm requests' templates were not sent within 180 s")
        time.sleep(1)
        marks = {short: self.taps[short].mark() for short in ("initiate_conversation", "channel_sender")}
        by_tel: dict[str, float] = {}
        for _ in range(sends):
            tel = "+4477009" + str(uuid.uuid4().int)[:5]
            start = time.perf_counter()
            self.initiate(tel)
            self.wait(lambda tel=tel: self.sent_to(tel))
            by_tel[tel] = (time.perf_counter() - start) * 1000
        time.sleep(1)  # the sender's write of the sid comes right after its send
        calls = [call for short, mark in marks.items() for call in self.taps[short].since(mark)]
        consent = self.consent_cost(calls, by_tel)
        cold = self.cold_starts("channel_sender", self.initiate)
        return {
            "initiate_warm_http_ms": summary(latencies),
            "request_to_template_sent_ms": summary(list(by_tel.values())),
            "sender_cold_start": cold,
            "consent": consent,
        }

    # -- load ----------------------------------------------------------------------------------------

    def load_figures(self, messages: int, seconds: float, warm_http_ms_p50: float | None) -> dict[str, Any]:
        """A paced load of signed webhooks from 50 customers, then the accounting of every message.

        The sms channel (3 s debounce) makes each customer's burst one reply; the figures sit next to
        the single-request warm webhook latency measured before, with nothing else running.
        """
        repo = ConversationRepository(self.runner.client("dynamodb"), self.outputs["tables"]["conversations"])
        people = []
        for index in range(50):
            tel = f"+4477008{index:05d}"
            record = open_conversation(self.runner.client, self.outputs, self.tenant, tel, channel="sms")
            people.append(Customer(tel, record.conversation_id, record.customer_address))
        plan = plan_load(people, messages, seconds)
        expected = expected_counts(plan)
        name = self.function("twilio_webhook")
        replier = self.function("reply_processor")
        since = len(self.runner.stats)
        # Every customer writes within the run (the fake Twilio refuses replies outside the window).
        for person in people:
            self.twilio.customer_wrote(person.address, self.tenant.address("sms"))
        run = drive(
            plan,
            f"{self.api}/sms",
            self.tenant.auth_token,
            self.tenant.account_sid,
            self.tenant.address("sms"),
        )
        sending_done = time.monotonic()

        def read() -> dict[str, Any]:
            found = {p.tel: repo.get(p.tel, p.conversation_id) for p in people}
            return {tel: record for tel, record in found.items() if record is not None}

        records = read()
        while not settled(records, expected) and time.monotonic() < sending_done + 150:
            time.sleep(1)
            records = read()
        answered_after_s = round(time.monotonic() - sending_done, 1)
        time.sleep(4)  # a stray second reply would arrive by now
        records = read()
        addresses = {p.address: p.tel for p in people}
        replies: dict[str, list[dict[str, Any]]] = {}
        for message in self.twilio.messages():
            if message.get("to") in addresses:
                replies.setdefault(addresses[str(message["to"])], []).append(message)
        queue_arn = self.runner.client("sqs").get_queue_attributes(
            QueueUrl=self.outputs["queues"]["sms-ai-reply"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        consumed: Counter[str] = Counter()
        for event, _ in self.runner.history[since:]:
            for record in event.get("Records", []) if isinstance(event, dict) else []:
                if record.get("eventSourceARN") == queue_arn:
                    consumed[json.loads(record["body"])["detail"]["message_sid"]] += 1
        items = MessageRepository(self.runner.client("dynamodb"), self.outputs["tables"]["messages"])
        histories = {tel: list(items.all_of(record.conversation_id)) for tel, record in records.items()}
        accounting, problems = account(
            plan, records, histories, replies, self.openai.requests.snapshot(), consumed
        )
        load = run.figures()
        return {
            **load,
            **accounting,
            "all_answered_s_after_last_webhook": answered_after_s,
            "problems": problems[:10],
            "baseline_single_request_warm_http_ms_p50": warm_http_ms_p50,
            "webhook_p50_ratio_vs_single_warm": (
                round(load["webhook_ms"]["p50"] / warm_http_ms_p50, 2) if warm_http_ms_p50 else None
            ),
            "peak_concurrency": {
                "twilio_webhook": self.runner.workers[name].peak,
                "reply_processor": self.runner.workers[replier].peak,
            },
            "throttled_invokes": sum(self.runner.throttles.values()),
        }

    # -- size and imports ---------------------------------------------------------------------------

    def deployed_sizes(self, build_dir: Path) -> dict[str, Any]:
        """Each function as deployed: its code plus the layers Terraform gave it (read back from the
        emulator), unzipped, next to Lambda's 250 MB limit for the two together."""
        manifest = load_manifest(build_dir)
        topology = self.runner.topology
        assert topology is not None
        found = {}
        for short, name in sorted(self.outputs["functions"].items()):
            function = topology.functions[str(name)]
            code = manifest[function.code_sha256]
            layers = [manifest[topology.layers[arn].code_sha256] for arn in function.layer_arns]
            unzipped = code.unzipped_size + sum(layer.unzipped_size for layer in layers)
            found[short] = {
                "code_unzipped_bytes": code.unzipped_size,
                "layers": [layer.path for layer in layers],
                "layers_unzipped_bytes": sum(layer.unzipped_size for layer in layers),
                "deployed_unzipped_bytes": unzipped,
                "deployed_zip_bytes": code.size + sum(layer.size for layer in layers),
                "baseline_lambda_unzipped_limit_bytes": LAMBDA_UNZIPPED_LIMIT_BYTES,
                "share_of_limit": round(unzipped / LAMBDA_UNZIPPED_LIMIT_BYTES, 3),
            }
        return found

    def imports(self) -> dict[str, Any]:
        deployed = self.outputs["functions"]
        return {short: self.bare_import_ms(short) for short in IMPORT_ONLY if short in deployed}


def sizes(build_dir: Path) -> dict[str, Any]:
    manifest = json.loads((build_dir / "manifest.json").read_text())["artifacts"]
    return {
        name: {"zip_bytes": a["size"], "unzipped_bytes": a["unzipped_size"]} for name, a in manifest.items()
    }


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and not {"p50", "p99"} <= set(value):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, dict):
            rows.append((prefix, f"p50 {value['p50']}  p99 {value['p99']}  (n={value['n']})"))
        else:
            rows.append((prefix, json.dumps(value)))

    walk("", results)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warm", type=int, default=200, help="warm webhook / initiate requests")
    parser.add_argument("--replies", type=int, default=30, help="single-message replies timed")
    parser.add_argument("--bursts", type=int, default=3, help="5-message bursts")
    parser.add_argument("--load-messages", type=int, default=300, help="webhooks in the load run")
    parser.add_argument("--load-seconds", type=float, default=40.0, help="duration of the load run")
    parser.add_argument(
        "--points", default="1,100,1000", help="messages of one conversation at which it is measured"
    )
    parser.add_argument("--samples", type=int, default=30, help="warm webhooks timed at each point")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"what to run, of {','.join(PHASES)} (comma-separated)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build", help="artifacts to deploy")
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    if args.phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(args.phases - set(PHASES)))}")
    args.points = tuple(int(n) for n in args.points.split(","))
    return args


def run_phases(bench: Bench, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Each figure's phase in turn, into ``results`` (kept there when a later phase fails)."""
    phases = args.phases
    if "webhook" in phases:
        progress("webhook: cold starts, warm latency, AWS calls")
        results["webhook"] = bench.webhook_figures(args.warm)
    if "replies" in phases:
        progress("replies: cold starts, webhook-to-reply latency, bursts, consent checks")
        results["replies"] = bench.reply_figures(args.replies, args.bursts)
    if "outbound" in phases:
        progress("outbound: initiate latency, request-to-template latency, sender cold start, consent")
        results["outbound"] = bench.outbound_figures(min(args.warm, 100), 20)
    if "imports" in phases:
        progress(f"imports: handler vs bare dependencies of {', '.join(IMPORT_ONLY)}")
        results["imports"] = bench.imports()
    if "long" in phases:
        points = ", ".join(map(str, args.points))
        progress(f"long conversation: write units, AI input tokens, warm webhook at messages {points}")
        results["long_conversation"] = LongConversation(bench).run(args.points, args.samples)
    if "load" in phases:
        progress(f"load: {args.load_messages} webhooks from 50 customers over ~{args.load_seconds:.0f} s")
        warm = results.get("webhook", {}).get("warm_http_ms", {}).get("p50")
        results["load"] = bench.load_figures(args.load_messages, args.load_seconds, warm)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        emulator = runner_emulator_kind()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    openai = OpenAIFake(0).start()
    twilio = TwilioFake(0).start()
    fakes = (("openai_base_url", openai.url + "/v1"), ("twilio_api_base_url", twilio.url))
    cloud = LocalCloud(build_dir=args.build_dir, work_dir=ROOT / ".local" / "bench", emulator=emulator)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    started = time.monotonic()
    try:
        progress("starting the local cloud (terraform apply takes a minute or two)")
        cloud.start(
            0, 0, [Workspace(WORKSPACE, "local.tfvars", (("channels", CHANNELS), *fakes))], count_calls=True
        )
        results["emulator"] = cloud.emulator_kind
        results["terraform_apply_s"] = round(cloud.terraform.apply_seconds[WORKSPACE], 1)
        results["artifacts"] = sizes(args.build_dir)
        bench = Bench(cloud, openai, twilio)
        results["deployed"] = bench.deployed_sizes(args.build_dir)
        try:
            run_phases(bench, args, results)
        except Exception:  # what ran so far is still written, with the failure
            results["failed"] = traceback.format_exc()
            progress("a phase failed: the figures so far are written, with the traceback")
    finally:
        cloud.stop()
        openai.stop()
        twilio.stop()
    results["bench_s"] = round(time.monotonic() - started, 1)
    rows = summary_rows(results)
    results["summary"] = [row.as_json() for row in rows]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table({key: value for key, value in results.items() if key != "summary"}))
    print("\n" + render(rows))
    print(f"\nwritten: {args.output}")
    if "failed" in results:
        print(results["failed"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
