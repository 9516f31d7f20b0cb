"""`python -m ops`: argument parsing and printing only; the work is in the sibling modules.

Results go to stdout, progress and errors to stderr, and the exit code tells a script what happened
(see `python -m ops --help`).
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.masking import mask_address, mask_body
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ops import consent, conversations, dlq, migrate, replay, retry, tenants
from ops.errors import EXIT_FAILED, EXIT_OK, OpsError
from ops.table import age, render, render_fields
from ops.target import DEFAULT_NAME_PREFIX, WORKSPACE_ENV, Target

EXIT_CODES = """exit codes:
  0  done
  1  the operation failed or was only partly done (the output says what is left)
  2  usage error: bad arguments or an invalid input file
  3  not found: no such queue, archive, rule, project or conversation"""

Handler = Callable[[Target, argparse.Namespace, TextIO], int]


def _target_options() -> argparse.ArgumentParser:
    # SUPPRESS lets the options go before or after the subcommand without one copy resetting the other.
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("target")
    group.add_argument(
        "--workspace", default=argparse.SUPPRESS, help=f"Terraform workspace (env {WORKSPACE_ENV})"
    )
    group.add_argument(
        "--name-prefix",
        default=argparse.SUPPRESS,
        help=f"var.name_prefix of the deployment (default {DEFAULT_NAME_PREFIX})",
    )
    group.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (env AWS_REGION)")
    group.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help="AWS endpoint, e.g. the local cloud's emulator (env AWS_ENDPOINT_URL)",
    )
    group.add_argument(
        "--dynamodb-endpoint-url",
        default=argparse.SUPPRESS,
        help="DynamoDB endpoint when it is not --endpoint-url, e.g. the local cloud's DynamoDB Local "
        "(env AWS_ENDPOINT_URL_DYNAMODB)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the local cloud `make local` runs, from .local/endpoints.json (no other option needed)",
    )
    group.add_argument(
        "--outputs",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="`terraform output -json` of the workspace: read names from it instead of deriving them",
    )
    return parent


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


# ---- dlq ---------------------------------------------------------------------------------------------


def _dlq_list(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    found = dlq.list_dlqs(target)
    if not found:
        print(f"no dead-letter queues named {target.name}-*{dlq.DLQ_SUFFIX}", file=sys.stderr)
        return EXIT_OK
    rows = [
        (d.queue.name, d.messages, d.in_flight, age(d.oldest_age_seconds), ", ".join(d.sources) or "-")
        for d in found
    ]
    print(
        render(["queue", "messages", "in flight", "oldest", "source queue"], rows, right=(1, 2, 3)), file=out
    )
    return EXIT_OK


def _peek_rows(items: Sequence[dlq.Peeked]) -> list[tuple[object, ...]]:
    return [
        (
            p.message_id,
            p.sent_at,
            p.receive_count,
            p.summary.detail_type,
            p.summary.channel,
            p.summary.route,
            p.summary.ids,
            p.summary.customer,
            p.summary.body,
            p.error,
        )
        for p in items
    ]


_PEEK_HEADERS = [
    "message id",
    "sent",
    "receives",
    "detail-type",
    "channel",
    "route",
    "ids",
    "customer",
    "body",
]


def _dlq_show(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    queue = dlq.resolve_queue(target, args.queue)
    items = dlq.peek(target, queue, args.max, reveal=args.reveal)
    if not items:
        print(f"{queue.name}: empty", file=out)
        return EXIT_OK
    rows = _peek_rows(items)
    headers = list(_PEEK_HEADERS)
    if any(p.error for p in items):
        headers.append("delivery error")
    else:
        rows = [row[:-1] for row in rows]
    print(render(headers, rows, right=(2,)), file=out)
    print(f"{len(items)} message(s) shown; each peek adds one to their receive count", file=sys.stderr)
    return EXIT_OK


def _dlq_redrive(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    queue = dlq.resolve_queue(target, args.queue)
    result = dlq.redrive(
        target,
        queue,
        to=args.to,
        limit=args.max,
        dry_run=args.dry_run,
        method=args.method,
        wait_seconds=args.wait,
    )
    if args.dry_run:
        rows = [
            (p.message_id, p.sent_at, p.summary.detail_type, p.summary.route, p.summary.ids, destination)
            for p, destination in result.planned
        ]
        if rows:
            print(
                render(["message id", "sent", "detail-type", "route", "ids", "would move to"], rows), file=out
            )
        print(
            f"dry run: {len(rows)} message(s) would move from {queue.name} to {result.destination}", file=out
        )
        return EXIT_OK
    print(
        render_fields(
            [
                ("queue", queue.name),
                ("destination", result.destination),
                ("method", result.method),
                ("moved", result.moved),
                ("failed", result.failed),
                ("left (no target)", result.skipped),
            ]
        ),
        file=out,
    )
    if result.note:
        print(result.note.strip(), file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


# ---- replay ------------------------------------------------------------------------------------------


def _replay(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    start, end = replay.parse_time(args.start), replay.parse_time(args.end)
    report = replay.replay(
        target,
        start,
        end,
        args.rule or [],
        dry_run=args.dry_run,
        attempt=args.attempt,
        wait_seconds=args.wait,
    )
    details = report.details
    fields: list[tuple[str, object]] = [
        ("replay", report.name),
        ("state", report.state if not args.dry_run else "not started (dry run)"),
        ("archive", report.archive),
        ("window", f"{start.isoformat()} .. {end.isoformat()}"),
        ("rules", ", ".join(report.rules) or "all rules on the bus"),
    ]
    if args.dry_run:
        fields.append(("archive events", report.archive_events))
        fields.append(("already exists", f"yes, {details.get('State')}" if report.existed else "no"))
    else:
        fields.append(("repeat", "yes: reported the existing replay" if report.existed else "no: started it"))
        fields.append(("started", details.get("ReplayStartTime")))
        fields.append(("ended", details.get("ReplayEndTime")))
        if details.get("StateReason"):
            fields.append(("reason", details["StateReason"]))
    print(render_fields(fields), file=out)
    if report.timed_out:
        print(
            f"still {report.state} after {args.wait:.0f}s; run the same command again to follow it",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK if report.ok else EXIT_FAILED


# ---- tenant ------------------------------------------------------------------------------------------


def _tenant_put(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    project = tenants.load(args.file)
    if args.dry_run:
        print(f"valid: {project.company_id}/{project.project_id} (not written: dry run)", file=out)
        return EXIT_OK
    tenants.put(target, project)
    addresses = ", ".join(f"{c}={s.address}" for c, s in project.channels.items())
    print(f"written: {project.company_id}/{project.project_id} ({project.status}; {addresses})", file=out)
    return EXIT_OK


def _tenant_get(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    print(tenants.dump(tenants.get(target, args.company, args.project), args.format), file=out)
    return EXIT_OK


def _tenant_list(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    projects = tenants.list_all(target)
    rows = [
        (
            p.company_id,
            p.project_id,
            p.status,
            ", ".join(p.allowed_channels),
            ", ".join(s.address for s in p.channels.values()),
        )
        for p in projects
    ]
    print(render(["company", "project", "status", "channels", "addresses"], rows), file=out)
    return EXIT_OK


# ---- conversation ------------------------------------------------------------------------------------


def _conversation_show(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    shown = conversations.show(target, args.tel, args.conversation_id)
    conversation, count = shown.conversation, shown.count

    def address(value: str) -> str:
        return value if args.reveal else mask_address(value)

    print(
        render_fields(
            [
                ("conversation", conversation.conversation_id),
                ("customer", address(conversation.customer_address)),
                (
                    "company",
                    f"{conversation.company_id}/{conversation.project_id} {conversation.company_address}",
                ),
                ("channel", conversation.channel),
                ("status", conversation.status),
                ("handed off", _handoff(conversation)),
                ("last error", conversation.last_error),
                ("consent", shown.consent.state if shown.consent else "opted_in (never asked)"),
                ("ai conversation", conversation.ai_conversation_id),
                ("created", conversation.created_at),
                ("updated", conversation.updated_at),
                ("last inbound", conversation.last_inbound_at),
                ("answered", f"{conversation.answered_seq} of {conversation.inbound_seq} inbound"),
                ("conversations", f"{count} for this number"),
            ]
        ),
        file=out,
    )
    print(file=out)
    rows = [
        (
            i,
            m.direction,
            m.author,
            m.at,
            m.sid or "-",
            _delivery(m),
            m.body if args.reveal else mask_body(m.body),
        )
        for i, m in enumerate(shown.messages, start=1)
    ]
    print(render(["#", "direction", "author", "at", "sid", "delivery", "body"], rows, right=(0,)), file=out)
    return EXIT_OK


def _handoff(conversation: Conversation) -> str:
    if not conversation.handoff_to_human:
        return "no"
    reason = conversation.handoff_reason or "yes"
    return f"{reason} ({conversation.handoff_detail})" if conversation.handoff_detail else reason


def _delivery(message: Message) -> str:
    """Every status Twilio reported, in order, the failure's error code with it: "sent, undelivered 63016"."""
    if message.direction != "outbound":
        return "-"
    return (
        ", ".join(
            f"{entry.status} {entry.error_code}" if entry.error_code else entry.status
            for entry in message.statuses
        )
        or "-"
    )


def _conversation_handback(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    conversation = conversations.handback(target, args.tel, args.conversation_id)
    print(
        f"handed back: {conversation.conversation_id} is {conversation.status}; "
        "the AI answers the next message",
        file=out,
    )
    return EXIT_OK


def _conversation_retry(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    retried = retry.retry(target, args.tel, args.conversation_id)
    print(
        f"retried: {retried.conversation.conversation_id} is {retried.conversation.status}; the AI answers "
        f"its {retried.messages} customer message(s) after #{retried.answered_from} once",
        file=out,
    )
    return EXIT_OK


# ---- parser ------------------------------------------------------------------------------------------


# ---- consent -----------------------------------------------------------------------------------------


def _consent_show(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    project = consent.project_of(target, args.company, args.project)
    found = consent.show(target, project, args.channel, args.tel)
    shown = args.tel if args.reveal else mask_address(args.tel)
    if found is None:
        print(f"{shown}: opted_in (never asked)", file=out)
        return EXIT_OK
    print(f"{shown}: {found.state} since {found.changed_at}", file=out)
    rows = [
        (c.at, c.state, c.source, c.keyword or "-", c.message_sid or "-", c.operator or "-", c.reason or "-")
        for c in found.history or [found.change]
    ]
    print(render(["at", "state", "source", "keyword", "message", "by", "why"], rows), file=out)
    return EXIT_OK


def _consent_set(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    project = consent.project_of(target, args.company, args.project)
    changed = consent.set_state(target, project, args.channel, args.tel, args.state, args.by, args.reason)
    shown = args.tel if args.reveal else mask_address(args.tel)
    print(
        f"{shown}: {args.state}" if changed else f"{shown} was {args.state} already; nothing changed",
        file=out,
    )
    return EXIT_OK


def _consent_export(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    project = consent.project_of(target, args.company, args.project)
    text = consent.export(target, project, args.format)
    if args.output in (None, "-"):
        out.write(text)
        return EXIT_OK
    path = Path(args.output)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(
        f"written: {path} ({len(text.splitlines()) - (1 if args.format == 'csv' else 0)} lines)",
        file=sys.stderr,
    )
    return EXIT_OK


def _add_consent(
    groups: "argparse._SubParsersAction[argparse.ArgumentParser]", target: argparse.ArgumentParser
) -> None:
    parser = groups.add_parser("consent", help="a customer's opt-out state; exports", parents=[target])
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    about = argparse.ArgumentParser(add_help=False)
    about.add_argument("company", metavar="COMPANY")
    about.add_argument("project", metavar="PROJECT")
    customer = argparse.ArgumentParser(add_help=False)
    customer.add_argument("tel", metavar="TEL", help="customer number, '+44...' or 'whatsapp:+44...'")
    customer.add_argument("--channel", default="whatsapp", help="the project's channel (default whatsapp)")
    customer.add_argument("--reveal", action="store_true", help="print the full number")
    leaf(commands, "show", "a customer's consent and how it changed", _consent_show, target, about, customer)
    change = leaf(
        commands,
        "set",
        "change a customer's consent, saying who and why",
        _consent_set,
        target,
        about,
        customer,
    )
    change.add_argument("--state", required=True, choices=["opted_in", "opted_out"])
    change.add_argument(
        "--by", required=True, metavar="NAME", help="who makes the change (kept in the history)"
    )
    change.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the history)")
    export = leaf(
        commands,
        "export",
        "every customer's consent and its history for a project's addresses, for the tenant's records",
        _consent_export,
        target,
        about,
    )
    export.add_argument("--format", choices=["csv", "json"], default="csv", help="default csv")
    export.add_argument(
        "--output", metavar="FILE", help="file to write (readable by you only); default stdout"
    )


# ---- migrate -----------------------------------------------------------------------------------------


def _migrate(target: Target, args: argparse.Namespace, out: TextIO) -> int:
    state = Path(args.state) if args.state else migrate.default_state_file(target)
    report = migrate.migrate(
        target, dry_run=args.dry_run, state_file=state, restart=args.restart, ttl_days=args.ttl_days
    )
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {report.messages} messages of {report.conversations} conversations "
        f"({report.scanned} records scanned)",
        file=out,
    )
    for conversation_id in report.changed_meanwhile:
        print(f"changed while migrating, run again: {conversation_id}", file=out)
    for conversation_id in report.mismatched:
        print(f"history does not match inbound_seq, left as it is: {conversation_id}", file=out)
    if not report.complete and not args.dry_run:
        print(f"state kept in {state}: the next run resumes there", file=sys.stderr)
    return EXIT_OK if report.complete else EXIT_FAILED


def leaf(
    parent: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    helptext: str,
    handler: Handler,
    target: argparse.ArgumentParser,
    *shared: argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    parser = parent.add_parser(
        name,
        help=helptext,
        description=helptext,
        parents=[target, *shared],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _add_migrate(
    groups: "argparse._SubParsersAction[argparse.ArgumentParser]", target: argparse.ArgumentParser
) -> None:
    parser = leaf(
        groups,
        "migrate",
        "move conversations whose history is one list on the record to one item per message "
        "(idempotent; resumes from its state file)",
        _migrate,
        target,
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would move; write nothing")
    parser.add_argument(
        "--state", metavar="FILE", help="where the scan position is kept (default ops-migrate-<name>.json)"
    )
    parser.add_argument("--restart", action="store_true", help="scan from the start, ignoring the state")
    parser.add_argument(
        "--ttl-days",
        type=_positive,
        default=90,
        help="the deployment's conversation_ttl_days: each message expires that long after it was sent",
    )


def build_parser() -> argparse.ArgumentParser:
    target = _target_options()
    root = argparse.ArgumentParser(
        prog="python -m ops",
        description="Operate one workspace of the engine: dead-letter queues, event replay, tenants, "
        "conversations, migrations. Works against real AWS or the local cloud (--endpoint-url).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[target],
    )
    groups = root.add_subparsers(dest="group", required=True, metavar="COMMAND")

    # dlq
    dlq_parser = groups.add_parser(
        "dlq", help="list, peek at and redrive dead-letter queues", parents=[target]
    )
    dlq_commands = dlq_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    leaf(
        dlq_commands, "list", "every DLQ of the workspace with its depth and source queue", _dlq_list, target
    )
    show = leaf(
        dlq_commands,
        "show",
        "peek at a DLQ's messages without consuming them (each peek adds one to their receive count; "
        "they are released at once)",
        _dlq_show,
        target,
    )
    show.add_argument("queue", metavar="QUEUE", help="name (with or without '<prefix>-<workspace>-') or URL")
    show.add_argument("--max", type=_positive, default=10, help="messages to show (default 10)")
    show.add_argument("--reveal", action="store_true", help="show full numbers and message bodies")
    redrive = leaf(
        dlq_commands,
        "redrive",
        "move a DLQ's messages back to their source queue (StartMessageMoveTask, else receive -> send -> "
        "delete, sending before deleting)",
        _dlq_redrive,
        target,
    )
    redrive.add_argument(
        "queue", metavar="QUEUE", help="name (with or without '<prefix>-<workspace>-') or URL"
    )
    redrive.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    redrive.add_argument("--max", type=_positive, help="move at most N messages (forces message-by-message)")
    redrive.add_argument(
        "--to", metavar="QUEUE", help="destination queue (default: the DLQ's source, or each event's target)"
    )
    redrive.add_argument(
        "--method",
        choices=["auto", "move-task", "manual"],
        default="auto",
        help="auto: StartMessageMoveTask when it can do the job, else manual (default auto)",
    )
    redrive.add_argument(
        "--wait", type=float, default=300.0, help="seconds to follow a move task (default 300)"
    )

    # replay
    replay_parser = leaf(
        groups,
        "replay",
        "replay a window of the event archive onto the bus; repeating the same command reports the first "
        "replay, and the idempotent consumers make a replay send no duplicate reply",
        _replay,
        target,
    )
    replay_parser.add_argument(
        "--from", dest="start", required=True, metavar="ISO", help="window start (UTC if no offset)"
    )
    replay_parser.add_argument(
        "--to", dest="end", required=True, metavar="ISO", help="window end (UTC if no offset)"
    )
    replay_parser.add_argument(
        "--rule",
        action="append",
        metavar="NAME",
        help="only this rule's targets (repeatable; short or full name)",
    )
    replay_parser.add_argument("--dry-run", action="store_true", help="show the replay that would start")
    replay_parser.add_argument(
        "--attempt", type=_positive, default=1, help="replay the same window again on purpose (2, 3, ...)"
    )
    replay_parser.add_argument(
        "--wait", type=float, default=600.0, help="seconds to follow the replay (default 600)"
    )

    # tenant
    tenant_parser = groups.add_parser("tenant", help="manage company/project configuration", parents=[target])
    tenant_commands = tenant_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    put = leaf(
        tenant_commands,
        "put",
        "validate a YAML/JSON project file with the engine's own model and write it",
        _tenant_put,
        target,
    )
    put.add_argument("file", metavar="FILE", help="YAML or JSON (.json) file, '-' for stdin (YAML)")
    put.add_argument("--dry-run", action="store_true", help="validate only")
    get = leaf(
        tenant_commands,
        "get",
        "print one project's configuration (the format `put` reads)",
        _tenant_get,
        target,
    )
    get.add_argument("company", metavar="COMPANY")
    get.add_argument("project", metavar="PROJECT")
    get.add_argument("--format", choices=["yaml", "json"], default="yaml", help="default yaml")
    leaf(tenant_commands, "list", "every project: status, channels, addresses", _tenant_list, target)

    _add_consent(groups, target)
    _add_migrate(groups, target)

    # conversation
    conv_parser = groups.add_parser(
        "conversation", help="inspect a conversation, hand it back to the AI", parents=[target]
    )
    conv_commands = conv_parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    conv_show = leaf(
        conv_commands,
        "show",
        "a customer's latest (or given) conversation and its messages",
        _conversation_show,
        target,
    )
    conv_show.add_argument("tel", metavar="TEL", help="customer number, '+44...' or 'whatsapp:+44...'")
    conv_show.add_argument("--conversation-id", metavar="ID", help="this conversation instead of the latest")
    conv_show.add_argument("--reveal", action="store_true", help="show the full number and message bodies")
    handback = leaf(
        conv_commands,
        "handback",
        "clear handoff_to_human (only if set) and make the conversation active, so the AI answers again",
        _conversation_handback,
        target,
    )
    handback.add_argument("tel", metavar="TEL", help="customer number")
    handback.add_argument("conversation_id", metavar="CONVERSATION_ID")
    retried = leaf(
        conv_commands,
        "retry",
        "answer a failed, undelivered or handed-over conversation's customer messages again, once: "
        "those after the last reply that reached them",
        _conversation_retry,
        target,
    )
    retried.add_argument("tel", metavar="TEL", help="customer number")
    retried.add_argument("conversation_id", metavar="CONVERSATION_ID")
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if getattr(args, "local", False):
            target = Target.local(getattr(args, "workspace", None))
        else:
            target = Target.resolve(
                getattr(args, "workspace", None),
                getattr(args, "name_prefix", None),
                getattr(args, "region", None),
                getattr(args, "endpoint_url", None),
                getattr(args, "outputs", None),
                getattr(args, "dynamodb_endpoint_url", None),
            )
        handler: Handler = args.handler
        return handler(target, args, out)
    except OpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except ClientError as error:
        info = error.response.get("Error", {})
        print(f"error: AWS {info.get('Code', '?')}: {info.get('Message', error)}", file=sys.stderr)
        return EXIT_FAILED
    except BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
