"""`make bench`: the engine's figures on the local cloud, written to bench/results.json and as a table.

One emulator, one `terraform apply` (workspace "bench": whatsapp with a zero debounce window so
latencies exclude it, sms with a 3 s window for the burst figure), the fakes with zero latency and
the runner with per-function call counters. Each figure stands next to its baseline: cold starts
next to the bare import time of the same dependencies in a fresh process, AI calls per burst next
to the one-call-per-message design, reply latency next to a fixed 30 s delay plus polling. Times on
this shared 2-core machine are noisy: read ratios and counts first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ai_comms.providers.twilio_signature import sign
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake
from local_cloud.cloud import LocalCloud
from local_cloud.load import Customer, account, drive, expected_counts, plan_load, settled
from local_cloud.seeding import open_conversation, seed_tenant
from local_cloud.terraform import Workspace
from local_cloud.worker import Invocation

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = "bench"
CHANNELS = (
    '{whatsapp={debounce_seconds=0,address_prefix="whatsapp:"},sms={debounce_seconds=3,address_prefix=""}}'
)
SEEDS_REPLY_DELAY_S = 30.0  # the seeds' fixed delay before answering, plus a polling loop
FUNCTIONS = ("twilio_webhook", "reply_processor", "initiate_conversation", "channel_sender")

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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.50), "p99": percentile(values, 0.99)}


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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

    def webhook(self, tel: str, body: str, channel: str = "whatsapp") -> tuple[int, float]:
        prefix = "whatsapp:" if channel == "whatsapp" else ""
        form = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": self.tenant.account_sid,
            "From": prefix + tel,
            "To": prefix + self.tenant.company_numbers[channel],
            "Body": body,
            "NumMedia": "0",
        }
        url = f"{self.api}/{channel}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(self.tenant.auth_token, url, form),
        }
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
        latencies = []
        for index in range(replies):
            tel = self.conversation()
            start = time.perf_counter()
            self.webhook(tel, f"question {index}")
            self.wait(lambda tel=tel: self.sent_to(tel))
            latencies.append((time.perf_counter() - start) * 1000)
        calls_per_reply = round((self.calls(name) - before_calls) / replies, 2)
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
        for _ in range(warm):
            status, ms = self.initiate()
            assert status == 202, status
            latencies.append(ms)
        sent = []
        for _ in range(sends):
            tel = "+4477009" + str(uuid.uuid4().int)[:5]
            start = time.perf_counter()
            self.initiate(tel)
            self.wait(lambda tel=tel: self.sent_to(tel))
            sent.append((time.perf_counter() - start) * 1000)
        cold = self.cold_starts("channel_sender", self.initiate)
        return {
            "initiate_warm_http_ms": summary(latencies),
            "request_to_template_sent_ms": summary(sent),
            "sender_cold_start": cold,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warm", type=int, default=200, help="warm webhook / initiate requests")
    parser.add_argument("--replies", type=int, default=30, help="single-message replies timed")
    parser.add_argument("--bursts", type=int, default=3, help="5-message bursts")
    parser.add_argument("--load-messages", type=int, default=300, help="webhooks in the load run")
    parser.add_argument("--load-seconds", type=float, default=40.0, help="duration of the load run")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build", help="artifacts to deploy")
    args = parser.parse_args(argv)
    openai = OpenAIFake(0).start()
    twilio = TwilioFake(0).start()
    fakes = (("openai_base_url", openai.url + "/v1"), ("twilio_api_base_url", twilio.url))
    cloud = LocalCloud(build_dir=args.build_dir, work_dir=ROOT / ".local" / "bench")
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        progress("starting the local cloud (terraform apply takes a minute or two)")
        cloud.start(
            0, 0, [Workspace(WORKSPACE, "local.tfvars", (("channels", CHANNELS), *fakes))], count_calls=True
        )
        results["terraform_apply_s"] = round(cloud.terraform.apply_seconds[WORKSPACE], 1)
        results["artifacts"] = sizes(args.build_dir)
        bench = Bench(cloud, openai, twilio)
        progress("webhook: cold starts, warm latency, AWS calls")
        results["webhook"] = bench.webhook_figures(args.warm)
        progress("replies: cold starts, webhook-to-reply latency, bursts")
        results["replies"] = bench.reply_figures(args.replies, args.bursts)
        progress("outbound: initiate latency, request-to-template latency, sender cold start")
        results["outbound"] = bench.outbound_figures(min(args.warm, 100), 20)
        progress(f"load: {args.load_messages} webhooks from 50 customers over ~{args.load_seconds:.0f} s")
        results["load"] = bench.load_figures(
            args.load_messages, args.load_seconds, results["webhook"]["warm_http_ms"]["p50"]
        )
    finally:
        cloud.stop()
        openai.stop()
        twilio.stop()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(table(results))
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
