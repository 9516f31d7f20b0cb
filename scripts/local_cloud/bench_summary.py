"""`make bench`'s readable summary: each headline figure next to its baseline, from the results JSON.

Phases that did not run leave their rows out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    baseline: str

    def as_json(self) -> dict[str, str]:
        return {"figure": self.figure, "value": self.value, "baseline": self.baseline}


def _ms(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "-"
    return f"p50 {figures['p50']:g} / p99 {figures['p99']:g} ms"


def _old_layout(units: int, item_bytes: int, over_limit: bool) -> str:
    size = f"{item_bytes / 1024:.0f} KB item"
    return f"{units} (old layout, {size}{', over the 400 KB limit' if over_limit else ''})"


def long_conversation_rows(long: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    at = long.get("at_message", {})
    target = long.get("design_target_latency_ratio")
    for n, figures in at.items():
        for step, label in (("inbound", "per inbound message"), ("reply", "per reply")):
            measured = figures[step]
            rows.append(
                Row(
                    f"DynamoDB write units {label} @ message {n}",
                    str(measured["write_units"]),
                    _old_layout(
                        measured["baseline_old_layout_write_units"],
                        measured["baseline_old_layout_item_bytes"],
                        measured["baseline_old_layout_over_400kb_item_limit"],
                    ),
                )
            )
    for n, figures in at.items():
        rows.append(
            Row(
                f"AI input tokens per reply @ message {n}",
                f"{figures['reply_input_tokens']} (compaction)",
                f"{figures['baseline_reply_input_tokens_without_compaction']} (no compaction: whole history)",
            )
        )
    for figures in at.values():
        warm = figures["warm_webhook"]
        ratios = f"x{warm['p50_ratio_vs_message_1']:g} / x{warm['p99_ratio_vs_message_1']:g} of message 1"
        rows.append(
            Row(
                f"warm webhook HTTP @ messages {warm['messages'][0]}-{warm['messages'][1]}",
                f"{_ms(warm['http_ms'])} ({ratios})",
                f"flat: within x{target:g} of message 1",
            )
        )
    return rows


def _consent_rows(path: str, consent: dict[str, Any] | None) -> list[Row]:
    if not consent:
        return []
    check = (consent.get("consent_check_ms") or {}).get("p50", "-")
    operations = ", ".join(consent["consent_checks_by_operation"])
    functions = ", ".join(f"{fn} {n:g}" for fn, n in consent.get("consent_checks_by_function", {}).items())
    checks = f"{consent['consent_checks_per_send']:g} {operations}: {functions}" if operations else ""
    return [
        Row(
            f"AWS calls per send, {path}",
            f"{consent['aws_calls_per_send']:g} with consent checks ({checks or 'none'})",
            f"{consent['baseline_aws_calls_per_send_without_checks']:g} without",
        ),
        Row(
            f"latency p50, {path}",
            f"{consent['path_ms']['p50']:g} ms with consent checks (each check p50 {check} ms)",
            f"{consent['baseline_path_ms_without_checks']['p50']:g} ms without",
        ),
    ]


def summary_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "long_conversation" in results:
        rows += long_conversation_rows(results["long_conversation"])
    webhook = results.get("webhook")
    if webhook:
        rows.append(Row("AWS calls per warm webhook", f"{webhook['aws_calls_per_warm_webhook']:g}", "-"))
        rows.append(Row("warm webhook HTTP (replies running beside)", _ms(webhook["warm_http_ms"]), "-"))
    replies = results.get("replies")
    if replies:
        rows.append(
            Row(
                "webhook to reply sent",
                _ms(replies["webhook_to_reply_ms"]),
                f"{replies['baseline_seeds_reply_ms'] / 1000:g} s fixed delay (seeds)",
            )
        )
        rows.append(
            Row(
                "AI calls per 5-message burst",
                ", ".join(map(str, replies["ai_calls_per_5_message_burst"])),
                str(replies["baseline_seeds_ai_calls_per_5_message_burst"]),
            )
        )
        rows += _consent_rows("reply path (webhook to reply sent)", replies.get("consent"))
    outbound = results.get("outbound")
    if outbound and "consent" in outbound:
        rows += _consent_rows("initiate path (request to template sent)", outbound["consent"])
    imports: dict[str, Any] = {}
    for section, key in (
        ("webhook", "cold_start"),
        ("replies", "cold_start"),
        ("outbound", "sender_cold_start"),
    ):
        cold = (results.get(section) or {}).get(key)
        if cold:
            name = {"webhook": "twilio_webhook", "replies": "reply_processor", "outbound": "channel_sender"}
            imports[name[section]] = cold
    imports.update(results.get("imports") or {})
    for function, figures in sorted(imports.items()):
        rows.append(
            Row(
                f"handler import, {function}",
                f"{figures['handler_import_ms_p50']:g} ms",
                f"{figures['bare_dependency_import_ms_p50']:g} ms bare dependency import",
            )
        )
    for function, size in sorted((results.get("deployed") or {}).items()):
        code_kb = size["code_unzipped_bytes"] / 1024
        rows.append(
            Row(
                f"deployed size (code + layers, unzipped), {function}",
                f"{size['deployed_unzipped_bytes'] / MB:.1f} MB (code {code_kb:.1f} KB)",
                f"{size['baseline_lambda_unzipped_limit_bytes'] / MB:.0f} MB Lambda limit",
            )
        )
    return rows


def render(rows: list[Row]) -> str:
    if not rows:
        return ""
    header = Row("figure", "value", "baseline")
    widths = [max(len(getattr(row, field)) for row in [header, *rows]) for field in ("figure", "value")]
    lines = []
    for row in [header, *rows]:
        lines.append(f"{row.figure.ljust(widths[0])}  {row.value.ljust(widths[1])}  {row.baseline}")
    return "\n".join(lines)
