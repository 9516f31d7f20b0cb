"""`make bench`'s figures at message 1, 100 and 1,000 of one conversation.

Two conversations grow side by side with the same messages: one of a project with compaction (the
default compact_threshold_tokens), one of a project without (0). Each reaches the next point through
local_cloud.long_conversation (the history stored through the engine's repositories, each turn put
on its AI conversation by the engine's own OpenAI client), then receives message n as a real signed
webhook. Message n is metered (local_cloud.call_tap): every write the webhook, the reply processor
and the status callbacks make is read before and after, so its write units are measured; the same
record writes are priced on the old one-item layout (local_cloud.write_units.legacy_units). The
reply's input tokens are the OpenAI fake's usage.input_tokens.

The warm webhook is timed with metering off, in one more conversation per point (messages n to
n + samples - 1), the points taking turns so that a drift of the shared machine's load touches
each alike; every webhook is sent once the one before it was answered, as a customer waiting for
the answer writes.

The OpenAI fake gets the model's real context window for this (gpt-4.1-mini: 1,047,576 tokens), so
the conversation without compaction reads its whole history every reply, as OpenAI would.
"""

from __future__ import annotations

import itertools
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench_stats import progress, summary

from ai_comms.models.conversation import Conversation
from ai_comms.providers.openai_client import AiClient
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import outbound_position, status_attribute
from ai_comms.store.tenants import TenantRepository
from local_cloud.item_size import item_size
from local_cloud.long_conversation import customer_text, extend
from local_cloud.seeding import SeededTenant, open_conversation, seed_tenant
from local_cloud.write_units import Item, ItemWrite, legacy_units, total_units

if TYPE_CHECKING:
    from bench import Bench

POINTS = (1, 100, 1000)
# The functions message n sets off that write: their writes are metered.
METERED = ("twilio_webhook", "reply_processor", "status_callback")
MODEL_CONTEXT_WINDOW_TOKENS = 1_047_576
DESIGN_TARGET_RATIO = 1.2
# The largest batch and part a position holds (ai_comms.store.messages): the end of one key range.
LAST_BATCH, LAST_PART = 10**13 - 1, 999


class LongConversation:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.runner = bench.runner
        self.tables: dict[str, str] = dict(bench.outputs["tables"])
        self.dynamodb = self.runner.client("dynamodb")
        self.records = ConversationRepository(self.dynamodb, self.tables["conversations"])
        self.ai = AiClient(bench.openai.url + "/v1", timeout_seconds=30.0, max_retries=2)
        plain = seed_tenant(
            self.runner.client,
            bench.outputs,
            company_id="bench-plain",
            company_numbers={"whatsapp": "+14155550102"},
            ai={"compact_threshold_tokens": 0},
        )
        bench.twilio.add_account(plain.account_sid, plain.auth_token)
        self.tenants = {"compaction": bench.tenant, "no_compaction": plain}

    # -- plumbing ----------------------------------------------------------------------------------

    def record(self, tel: str, conversation_id: str) -> Conversation:
        found = self.records.get(tel, conversation_id)
        assert found is not None, conversation_id
        return found

    def answered(self, tel: str, conversation_id: str, seq: int) -> bool:
        record = self.records.get(tel, conversation_id)
        return record is not None and record.answered_seq >= seq and record.lease_owner is None

    def history(self, conversation_id: str) -> list[Item]:
        """The conversation's message items as stored (DynamoDB JSON), in order."""
        items: list[Item] = []
        paginator = self.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.tables["messages"],
            KeyConditionExpression="conversation_id = :c",
            ExpressionAttributeValues={":c": {"S": conversation_id}},
            ConsistentRead=True,
        ):
            items += [item for item in page.get("Items", []) if "direction" in item]
        return items

    def sent(self, conversation_id: str, seq: int) -> list[Item]:
        """What was sent after the customer's message ``seq``: one key range of the messages table."""
        answer = self.dynamodb.query(
            TableName=self.tables["messages"],
            KeyConditionExpression="conversation_id = :c AND #position BETWEEN :low AND :high",
            ExpressionAttributeNames={"#position": "position"},
            ExpressionAttributeValues={
                ":c": {"S": conversation_id},
                ":low": {"S": outbound_position(seq, 0, 0)},
                ":high": {"S": outbound_position(seq, LAST_BATCH, LAST_PART)},
            },
            ConsistentRead=True,
        )
        return [item for item in answer.get("Items", []) if "direction" in item]

    def input_tokens(self, ai_conversation_id: str | None, since: int) -> int | None:
        """usage.input_tokens of the last response on that AI conversation since request ``since``."""
        found = [
            entry
            for entry in self.bench.openai.requests.snapshot()[since:]
            if entry.get("path") == "/v1/responses"
            and entry.get("conversation_id") == ai_conversation_id
            and isinstance(entry.get("usage"), dict)
        ]
        return int(found[-1]["usage"]["input_tokens"]) if found else None

    def grow(self, tenant: SeededTenant, tel: str, conversation_id: str, last: int) -> None:
        record = self.record(tel, conversation_id)
        if record.inbound_seq >= last:
            return
        project = TenantRepository(self.dynamodb, self.tables["company_data"]).get_project(
            tenant.company_id, tenant.project_id
        )
        assert project is not None
        extend(self.dynamodb, self.tables, record, last, project, self.ai, tenant.openai_api_key)

    # -- one metered message -------------------------------------------------------------------------

    def metered_message(
        self, tenant: SeededTenant, tel: str, conversation_id: str, seq: int
    ) -> dict[str, Any]:
        """Message ``seq`` as a real webhook, with every write of the functions it sets off metered."""
        taps = {short: self.bench.taps[short] for short in METERED}
        before = self.history(conversation_id)
        requests_since = len(self.bench.openai.requests.snapshot())
        marks = {short: tap.mark() for short, tap in taps.items()}
        for tap in taps.values():
            tap.metering = True
        try:
            status, _ = self.bench.webhook(tel, customer_text(seq), tenant=tenant)
            assert status == 200, status
            self.bench.wait(lambda: self.answered(tel, conversation_id, seq))
            sent = self.sent(conversation_id, seq)
            # WhatsApp's last status is "read": every callback of the reply has been stored by then.
            read = status_attribute("read")
            try:
                self.bench.wait(
                    lambda: all(read in item for item in self.sent(conversation_id, seq)), timeout=20
                )
                statuses_complete = True
            except TimeoutError:
                progress(f"message {seq}: not every delivery status arrived within 20 s")
                statuses_complete = False
            time.sleep(0.2)  # the runner returns the status callback's invocation right after its write
        finally:
            for tap in taps.values():
                tap.metering = False
        writes = {
            short: [w for call in tap.since(marks[short]) for w in call.writes] for short, tap in taps.items()
        }
        after = self.history(conversation_id)
        positions = {item["position"]["S"] for item in before}
        new_items = [item for item in after if item["position"]["S"] not in positions]
        inbound = [item for item in new_items if item["direction"]["S"] == "inbound"]
        outbound = [item for item in new_items if item["direction"]["S"] == "outbound"]
        record = self.record(tel, conversation_id)
        return {
            "inbound": self._price(writes["twilio_webhook"], before, inbound),
            "reply": {
                **self._price(writes["reply_processor"], [*before, *inbound], outbound),
                "parts": len(sent),
            },
            "status_callbacks": {
                "write_units": total_units(writes["status_callback"]),
                "writes": len(writes["status_callback"]),
                "all_statuses_arrived": statuses_complete,
                "baseline": "none: the old layout stored no delivery statuses",
            },
            "input_tokens": self.input_tokens(record.ai_conversation_id, requests_since),
            "history_messages_before": len(before),
        }

    def _price(self, writes: list[ItemWrite], history: list[Item], added: list[Item]) -> dict[str, Any]:
        record_writes = [w for w in writes if w.table == self.tables["conversations"]]
        old = legacy_units(record_writes, history, added)
        return {
            "write_units": total_units(writes),
            "items_written": len(writes),
            "by_table": {
                table: total_units([w for w in writes if w.table == table])
                for table in sorted({w.table for w in writes})
            },
            "baseline_old_layout_write_units": old.units,
            "baseline_old_layout_item_bytes": old.item_bytes,
            "baseline_old_layout_over_400kb_item_limit": old.over_item_limit,
        }

    # -- warm latency ----------------------------------------------------------------------------------

    def latency_conversation(self, n: int) -> tuple[str, str]:
        """A conversation of the project with compaction whose next message is message ``n``."""
        tenant = self.tenants["compaction"]
        tel = "+4477006" + str(time.monotonic_ns())[-5:]
        conversation_id = open_conversation(
            self.runner.client, self.bench.outputs, tenant, tel
        ).conversation_id
        if n > 1:
            # The engine answers message 1 (opening the AI conversation), the rest is seeded.
            status, _ = self.bench.webhook(tel, customer_text(1), tenant=tenant)
            assert status == 200, status
            self.bench.wait(lambda: self.answered(tel, conversation_id, 1))
            self.grow(tenant, tel, conversation_id, n - 1)
        return tel, conversation_id

    def latencies(self, points: tuple[int, ...], samples: int) -> dict[int, dict[str, Any]]:
        """Warm webhooks at messages n .. n + samples - 1 of one conversation per point, sent in turn
        (so a drift of the machine's load touches every point alike), each once the one before it
        was answered."""
        tenant = self.tenants["compaction"]
        name = self.bench.function("twilio_webhook")
        conversations = {n: self.latency_conversation(n) for n in points}
        http: dict[int, list[float]] = {n: [] for n in points}
        handler: dict[int, list[float]] = {n: [] for n in points}
        for index in range(samples):
            for n, (tel, conversation_id) in conversations.items():
                seq = n + index
                since = len(self.runner.stats)
                status, ms = self.bench.webhook(tel, customer_text(seq), tenant=tenant)
                assert status == 200, status
                http[n].append(ms)
                self.bench.wait(lambda tel=tel, cid=conversation_id, seq=seq: self.answered(tel, cid, seq))
                handler[n] += [i.duration_ms for i in self.bench.invocations(name, since)][:1]
        first = summary(http[points[0]])
        found = {}
        for n in points:
            measured = summary(http[n])
            found[n] = {
                "messages": [n, n + samples - 1],
                "http_ms": measured,
                "handler_ms": summary(handler[n]),
                "p50_ratio_vs_message_1": round(measured["p50"] / first["p50"], 2),
                "p99_ratio_vs_message_1": round(measured["p99"] / first["p99"], 2),
            }
        return found

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, points: tuple[int, ...] = POINTS, samples: int = 30) -> dict[str, Any]:
        gaps = [later - earlier for earlier, later in itertools.pairwise(points)]
        if gaps and min(gaps) <= samples:
            raise ValueError(f"points {points} are closer than {samples} latency samples apart")
        window = self.bench.openai.context_window_tokens
        self.bench.openai.configure(context_window_tokens=MODEL_CONTEXT_WINDOW_TOKENS)
        try:
            return self._run(points, samples)
        finally:
            self.bench.openai.configure(context_window_tokens=window)

    def _run(self, points: tuple[int, ...], samples: int) -> dict[str, Any]:
        conversations = {}
        for mode, tenant in self.tenants.items():
            tel = "+4477007" + str(time.monotonic_ns())[-5:]
            record = open_conversation(self.runner.client, self.bench.outputs, tenant, tel)
            conversations[mode] = (tenant, tel, record.conversation_id)
        at: dict[str, dict[str, Any]] = {}
        for n in points:
            figures: dict[str, Any] = {}
            for mode, (tenant, tel, conversation_id) in conversations.items():
                started = time.monotonic()
                self.grow(tenant, tel, conversation_id, n - 1)
                if n > 1:
                    took = time.monotonic() - started
                    progress(f"long conversation ({mode}): history to message {n - 1} in {took:.0f} s")
                figures[mode] = self.metered_message(tenant, tel, conversation_id, n)
            metered = figures["compaction"]
            at[str(n)] = {
                "inbound": metered["inbound"],
                "reply": metered["reply"],
                "status_callbacks": metered["status_callbacks"],
                "history_messages_before": metered["history_messages_before"],
                "reply_input_tokens": metered["input_tokens"],
                "baseline_reply_input_tokens_without_compaction": figures["no_compaction"]["input_tokens"],
            }
        progress(f"long conversation: {samples} warm webhooks at each of messages {points}, in turn")
        for n, latency in self.latencies(points, samples).items():
            at[str(n)]["warm_webhook"] = latency
        return {
            "points": list(points),
            "customer_message": customer_text(0),
            "design_target_latency_ratio": DESIGN_TARGET_RATIO,
            "at_message": at,
            "median_message_bytes": self._median_message_bytes(conversations["compaction"][2]),
        }

    def _median_message_bytes(self, conversation_id: str) -> float:
        return statistics.median(item_size(item) for item in self.history(conversation_id))
