"""`make bench`'s summary: each headline figure next to its baseline, only for the phases that ran."""

from typing import Any

from local_cloud.bench_summary import render, summary_rows


def step(units: int, old: int, old_bytes: int, over: bool = False) -> dict[str, Any]:
    return {
        "write_units": units,
        "baseline_old_layout_write_units": old,
        "baseline_old_layout_item_bytes": old_bytes,
        "baseline_old_layout_over_400kb_item_limit": over,
    }


def point(n: int, tokens: int, whole: int, p50: float, ratio: float) -> dict[str, Any]:
    return {
        "inbound": step(6, max(1, n // 3), n * 330),
        "reply": step(8, 5 * max(1, n // 3), n * 330, over=n > 1200),
        "reply_input_tokens": tokens,
        "baseline_reply_input_tokens_without_compaction": whole,
        "warm_webhook": {
            "messages": [n, n + 29],
            "http_ms": {"n": 30, "p50": p50, "p99": p50 * 2},
            "p50_ratio_vs_message_1": ratio,
            "p99_ratio_vs_message_1": ratio,
        },
    }


def test_the_long_conversation_rows_pair_each_figure_with_its_baseline() -> None:
    results = {
        "long_conversation": {
            "design_target_latency_ratio": 1.2,
            "at_message": {"1": point(1, 46, 46, 20.0, 1.0), "1300": point(1300, 2000, 44000, 22.0, 1.1)},
        }
    }
    rows = {row.figure: row for row in summary_rows(results)}
    inbound = rows["DynamoDB write units per inbound message @ message 1300"]
    assert inbound.value == "6" and inbound.baseline == "433 (old layout, 419 KB item)"
    assert "over the 400 KB limit" in rows["DynamoDB write units per reply @ message 1300"].baseline
    tokens = rows["AI input tokens per reply @ message 1300"]
    assert tokens.value.startswith("2000") and tokens.baseline.startswith("44000")
    warm = rows["warm webhook HTTP @ messages 1300-1329"]
    assert "x1.1" in warm.value and warm.baseline == "flat: within x1.2 of message 1"


def test_phases_that_did_not_run_leave_no_rows_and_the_table_lines_up() -> None:
    assert summary_rows({}) == [] and render([]) == ""
    consent = {
        "aws_calls_per_send": 11.0,
        "baseline_aws_calls_per_send_without_checks": 9.0,
        "consent_checks_per_send": 2.0,
        "consent_checks_by_operation": {"dynamodb.GetItem": 2.0},
        "consent_checks_by_function": {"reply_processor": 2.0},
        "consent_check_ms": {"n": 60, "p50": 2.5, "p99": 9.0},
        "path_ms": {"n": 30, "p50": 280.0, "p99": 360.0},
        "baseline_path_ms_without_checks": {"n": 30, "p50": 275.0, "p99": 355.0},
    }
    replies = {
        "webhook_to_reply_ms": {"n": 30, "p50": 280.0, "p99": 360.0},
        "baseline_seeds_reply_ms": 30000.0,
        "ai_calls_per_5_message_burst": [1, 1],
        "baseline_seeds_ai_calls_per_5_message_burst": 5,
        "consent": consent,
    }
    rows = summary_rows({"replies": replies})
    calls = next(row for row in rows if row.figure.startswith("AWS calls per send"))
    assert calls.value.startswith("11 with consent checks (2 dynamodb.GetItem: reply_processor 2)")
    assert calls.baseline == "9 without"
    lines = render(rows).splitlines()
    assert lines[0].startswith("figure") and len(lines) == len(rows) + 1
    starts = {len(line) - len(row.baseline) for line, row in zip(lines[1:], rows, strict=True)}
    assert all(line.endswith(row.baseline) for line, row in zip(lines[1:], rows, strict=True))
    assert len(starts) == 1  # the baselines start in one column
