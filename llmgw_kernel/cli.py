"""The ``llmgw`` command (also ``python -m llmgw_kernel``).

llmgw serve [--host H] [--port P] [--policy FILE] [--data-dir DIR]
llmgw policy validate FILE...        one line per error, with its path; exit 1 if any
llmgw policy schema                  the policy JSON Schema
llmgw policy diff A B                unified diff of the canonical forms
llmgw policy promote CANDIDATE [--policy LIVE] [--data-dir DIR] [--forecast-window 7d]
llmgw policy rollback [--policy LIVE]
llmgw forecast check [--policy LIVE] [--data-dir DIR] [--json]
llmgw replay --policy FILE [--data-dir DIR] [--since T] [--until T] [--json]
             [--source DIR|s3://...] [--key-history DIR] [--engine local|dask|ray] [--partitions N]
llmgw route explain --policy FILE --model NAME [--metadata JSON] [--user U] [--prompt-tokens N] [--request-id ID]
llmgw import openai|litellm|portkey|table FILE... --data-dir DIR [--map FIELD=COLUMN]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .server import BODY_TIMEOUT_S, DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_POLICY, DEFAULT_PORT, HEADER_TIMEOUT_S

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")  # --log-level: a typo is a usage error


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text}: seconds between 0 and 3600")
    return value


def _workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text}: between 1 and 256")
    return value


def _port(text: str) -> int:
    """A TCP port, 1..65535: the OS takes a larger one modulo 65536 (99999 bound 34463 while
    the server said it served on 99999)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a port number, 1 to 65535") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: a port number, 1 to 65535")
    return value


def _whole_number(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: a whole number of at least {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text}: a whole number of at least {low}")
        return value

    return parse


_count = _whole_number(1)  # a count the user gives (requests, partitions)
_tokens = _whole_number(0)  # a token count (a request never has fewer)


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(
        host=args.host, port=args.port, policy=args.policy, data_dir=args.data_dir,
        drain_s=args.drain_timeout, dashboards=not args.no_dashboards, log_level=args.log_level,
        log_format=args.log_format,
        open_views=args.open_dashboards, protect_views=args.protect_dashboards,
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout, workers=args.workers,
    )  # fmt: skip


def _validate(args: argparse.Namespace) -> int:
    from .policy.extras import load_servable
    from .policy.load import PolicyError

    failed = 0
    for file in args.files:
        try:
            policy = load_servable(file)  # valid, and servable by this installation
        except PolicyError as exc:
            failed += 1
            for path, message in exc.errors:
                print(f"{file}: {path or '<root>'}: {message}")
            continue
        print(f"{file}: ok ({policy.version}, {len(policy.routes)} routes, {len(policy.providers)} providers)")
        _warn_no_redis(file, policy)
    return 1 if failed else 0


def _warn_no_redis(file: object, policy: Any) -> None:
    """A warning on stderr, not an error (validation may run without the deploy's environment),
    when ``policy`` asks for state shared through Redis and this environment names none: here,
    ``llmgw serve`` would refuse it and a running gateway would reject the reload."""
    from .state.config import StateConfigError, redis_settings

    try:
        redis_settings(policy.state)
    except StateConfigError as exc:
        print(f"{file}: warning: {exc} (in this environment; fine if the deploy's sets it)", file=sys.stderr)


def _warn_state_change(live: Path, candidate: Any) -> None:
    """A warning on stderr when promoting ``candidate`` over the ``live`` file changes where the
    shared state lives (Redis added, removed, another ``url_env``/``prefix``...): a running
    gateway refuses that reload (the state is set up at start) and keeps its version until restarted."""
    from .policy.load import PolicyError, load_policy
    from .state.config import StateConfigError, redis_settings

    try:
        before, after = redis_settings(load_policy(live).state), redis_settings(candidate.state)
    except (OSError, PolicyError, StateConfigError):  # no live policy yet, or already warned of
        return
    if before != after:
        print(f"{live}: warning: the candidate changes state.redis; a running gateway refuses this reload "
              "(restart the gateway to change state)", file=sys.stderr)  # fmt: skip


def _schema(args: argparse.Namespace) -> int:
    from .policy.schema import policy_json_schema

    print(json.dumps(policy_json_schema(), indent=2))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .policy.lifecycle import diff

    text = diff(args.a, args.b)
    if text:
        sys.stdout.write(text)
        return 1  # like diff(1): 1 means "they differ"
    print("same policy")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from .policy.lifecycle import promote
    from .replay.forecast import forecast_for, parse_window

    try:
        window = parse_window(args.forecast_window)  # a bad value fails before anything changes
    except ValueError as exc:
        print(f"llmgw: --forecast-window {exc}", file=sys.stderr)
        return 2
    if args.policy.is_dir():  # reading it as the live file ended in IsADirectoryError's traceback
        print(f"llmgw policy promote: --policy {args.policy} is a directory, not the live policy file", file=sys.stderr)
        return 2
    if args.data_dir is None:  # the default: absent before the first `llmgw serve`, no forecast
        args.data_dir = DEFAULT_DATA_DIR
    elif not args.data_dir.is_dir():  # else "no forecast recorded" would hide the mistyped directory
        why = "is not a directory" if args.data_dir.exists() else "does not exist"
        print(f"llmgw policy promote: --data-dir {args.data_dir} {why} (nothing promoted)", file=sys.stderr)
        return 2
    until = datetime.now(UTC)
    has_log = (args.data_dir / "log" / "requests").is_dir()

    def forecast(candidate: Any) -> dict | None:  # the validated candidate, before anything changes
        _warn_no_redis(args.candidate, candidate)
        _warn_state_change(args.policy, candidate)
        return forecast_for(candidate, args.data_dir, until - window, until) if has_log else None

    change = promote(args.candidate, args.policy, forecast=forecast)
    print(f"promoted {args.candidate} -> {change.live}: {change.old_version} -> {change.new_version}")
    for module in change.modules:
        print(f"rule module installed: {change.live.parent / module}")
    if change.archived:
        print(f"previous version kept in {change.archived}")
    if change.forecast is not None:
        print(f"forecast recorded in {change.forecast} (replay over the last {args.forecast_window}; "
              f"check it with: llmgw forecast check --policy {change.live} --data-dir {args.data_dir})")  # fmt: skip
    else:
        print(f"no forecast recorded (no request logged in {args.data_dir} over the last {args.forecast_window})")
    return 0


def _forecast(args: argparse.Namespace) -> int:
    from .policy.versions import ForecastRecordError
    from .replay.forecast import NoForecastRecorded, forecast_report, format_report

    if not args.data_dir.is_dir():  # else "no forecast recorded" would hide the mistyped directory
        print(f"llmgw forecast check: {args.data_dir} does not exist", file=sys.stderr)
        return 2
    if (why := _policy_problem(args.policy)) is not None:  # else "no forecast ... (version None)"
        print(f"llmgw forecast check: {why}", file=sys.stderr)
        return 2
    try:
        report = forecast_report(args.policy, args.data_dir)
    except NoForecastRecorded as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 1
    except ForecastRecordError as exc:  # the record file is damaged: name it, no traceback
        print(f"llmgw forecast check: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return 0
    print(format_report(report))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from .policy.lifecycle import rollback

    change = rollback(args.policy)
    for entry, why in change.skipped:
        print(f"skipped {entry} (does not validate as the live policy): {why}", file=sys.stderr)
    print(f"rolled back {change.live}: {change.old_version} -> {change.new_version}")
    for module in change.modules:
        print(f"rule module restored: {change.live.parent / module}")
    if getattr(change, "forecast", None) is not None:
        print(f"the restored version's forecast is recorded again in {change.forecast}")
    return 0


def _policy_problem(policy: Path) -> str | None:
    """Why the policy file ``policy`` does not load (missing, a directory, invalid), in one line."""
    from .policy.load import PolicyError, load_policy

    try:
        load_policy(policy)
    except PolicyError as exc:
        return f"{policy}: " + "; ".join(f"{p or '<root>'}: {m}" for p, m in exc.errors)
    return None


def _window_args(args: argparse.Namespace) -> str | None:
    """Turn ``--since/--until`` into ISO UTC strings in place; the one-line reason when invalid."""
    from datetime import UTC, datetime

    from .timeparse import instant

    now = datetime.now(UTC)
    bounds: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        text = getattr(args, name)
        try:
            when = bounds[name] = None if text is None else instant(text, now)
        except ValueError as exc:
            return f"--{name} {exc}"
        setattr(args, name, None if when is None else when.isoformat())
    if bounds["since"] is not None and bounds["until"] is not None and bounds["since"] >= bounds["until"]:
        return f"--since {args.since} is not before --until {args.until}"
    return None


def _replay(args: argparse.Namespace) -> int:
    from .replay import replay
    from .replay.sources import Source

    source = args.source or args.data_dir
    why = _window_args(args) or Source.of(str(source)).missing()
    if why is None and args.key_history is not None and not args.key_history.is_dir():
        why = f"--key-history {args.key_history} does not exist (keys' own limits would not be replayed)"
    if why is None:
        why = _policy_problem(args.policy)
    if why is None and args.as_served and (args.engine is not None or args.partitions is not None):
        why = "--as-served replays in one process: it cannot be combined with --engine or --partitions"
    if why is not None:
        print(f"llmgw replay: {why}", file=sys.stderr)
        return 2
    con, status = _open_replay_source(source, args.key_history)
    if con is None:
        return status
    if args.engine is None and args.partitions is None:
        versions = _served_versions(args)
        result = replay(args.policy, con, since=args.since, until=args.until, versions=versions)
        if versions is not None:
            _say_unserved(args.policy, versions, result.summary)
        if result.summary.get("requests") == 0:
            _say_empty_window(args, con)
    else:
        con.close()  # it opens: the driver and each worker open it again
        from .replay.engines import replay_partitioned

        client = None
        if args.scheduler:
            from distributed import Client

            try:
                client = Client(args.scheduler)
            except OSError as exc:  # unreachable (after distributed.comm.timeouts.connect)
                print(f"llmgw replay: cannot reach the Dask scheduler {args.scheduler}: {exc}", file=sys.stderr)
                return 1
        result = replay_partitioned(
            args.policy, source, args.since, args.until, engine=args.engine or "local",
            partitions=args.partitions, key_history=args.key_history, client=client,
        )  # fmt: skip
    summary = {**result.summary, "compare_to_log": result.compare_to_log()}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    return 0


def _say_empty_window(args: argparse.Namespace, con: Any) -> None:
    """On stderr: the window holds no row (a summary of zeros reads like a free candidate),
    and where the log's rows are."""
    n, first, last = con.execute("SELECT count(*), min(ts), max(ts) FROM requests").fetchone()
    held = f"the log holds {n} requests from {first} to {last}" if n else "the log holds no request"
    print(f"llmgw replay: no request logged in the window ({args.since or 'its start'} .. {args.until or 'now'}); "
          f"{held}", file=sys.stderr)  # fmt: skip


def _open_replay_source(source: Any, key_history: Any) -> tuple[Any, int]:
    """(a connection to ``source``, 0), or (None, the exit status) after one line on stderr:
    a usage error (``s3://`` without a bucket), or a remote source that cannot be read (no
    credentials, no endpoint, no such bucket) — botocore's exception types, not a traceback."""
    from .replay.sources import Source, open_source

    try:
        return open_source(source, key_history=key_history), 0
    except ValueError as exc:  # s3fs: "s3://" without a bucket ("Cannot traverse all of S3")
        print(f"llmgw replay: --source {source}: {exc}", file=sys.stderr)
        return None, 2
    except Exception as exc:
        if not Source.of(str(source)).remote:
            raise
        why = " ".join(str(exc).split())
        print(f"llmgw replay: cannot read --source {source}: {type(exc).__name__}: {why}", file=sys.stderr)
        return None, 1


def _served_versions(args: argparse.Namespace) -> dict[str, Any] | None:
    """With ``--as-served``: every version ``--policy``'s history holds, so each row is
    replayed under the version that served it (``replay(versions=...)``)."""
    if not args.as_served:
        return None
    from .replay.versions import served_policies

    return served_policies(args.policy)


def _say_unserved(live: Path, versions: dict[str, Any], summary: dict[str, Any]) -> None:
    """On stderr: the versions the window's rows name that ``--policy``'s history lacks (those
    rows were replayed under ``--policy`` itself) — or holds only in an entry that does not
    load (damaged, unreadable, its modules gone): that entry is named, with why."""
    missing = [v for v in (summary.get("logged") or {}).get("policy_versions", []) if v not in versions]
    print(f"llmgw replay: --as-served: {len(versions)} version(s) in the policy's history", file=sys.stderr)
    damaged = {v: _damaged_entries(live, v) for v in missing}
    absent = [v for v in missing if not damaged[v]]
    if absent:
        print(
            f"llmgw replay: rows served by {', '.join(absent)} were replayed under --policy"
            " (not in its history: edited while no server ran, or archived as invalid)",
            file=sys.stderr,
        )
    for version, found in damaged.items():
        if found:
            listed = "; ".join(f"{entry} does not load: {why}" for entry, why in found)
            print(f"llmgw replay: rows served by {version} were replayed under --policy: {listed}", file=sys.stderr)


def _damaged_entries(live: Path, version: str) -> list[tuple[Path, str]]:
    """``live``'s history entries named for ``version`` (live and rolled-back), with why each
    does not load as a policy."""
    from .policy.load import PolicyError
    from .policy.versions import ROLLED_BACK, entries, history_dir, read_entry, validate_as_live

    rolled = history_dir(live) / ROLLED_BACK
    candidates = [*entries(live), *(sorted(rolled.iterdir()) if rolled.is_dir() else [])]
    out = []
    for entry in candidates:
        name = entry.name.removesuffix(".yaml").removesuffix("-invalid")
        if not name.endswith(f"-{version}"):
            continue
        try:
            validate_as_live(read_entry(entry), live)
            why = "its rule modules are not in the entry nor beside --policy"
        except PolicyError as exc:
            why = "; ".join(f"{p or '<root>'}: {m}" for p, m in exc.errors)
        except OSError as exc:
            why = f"{type(exc).__name__}: {exc.strerror or exc}"
        out.append((entry, " ".join(why.split())[:300]))
    return out


def _explain(args: argparse.Namespace) -> int:
    from .decisions.explain import explain_route
    from .decisions.routing import UnknownRoute
    from .policy.load import load_policy
    from .proxy.errors import GatewayError
    from .proxy.validate import check_metadata

    try:
        metadata = json.loads(args.metadata) if args.metadata else {}
    except json.JSONDecodeError as exc:
        print(f"llmgw: --metadata is not valid JSON ({exc})", file=sys.stderr)
        return 1
    if not isinstance(metadata, dict):
        print("llmgw: --metadata must be a JSON object", file=sys.stderr)
        return 1
    try:  # the proxy's own rule: a team or user that is not a string is a 400 there
        check_metadata(metadata)
    except GatewayError as exc:
        print(f"llmgw: --metadata: {exc.message}", file=sys.stderr)
        return 1
    policy = load_policy(args.policy)
    try:
        print(explain_route(policy, args.model, metadata, args.user, args.prompt_tokens, args.request_id))
    except UnknownRoute as exc:
        print(f"llmgw: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def _traffic(args: argparse.Namespace) -> int:
    from .datadir import holder_of
    from .traffic import env_port, serve_synthetic_traffic

    if args.port is None and args.url is None:
        try:
            args.port = env_port()
        except ValueError as exc:
            print(f"llmgw traffic: {exc}", file=sys.stderr)
            return 2
    holder = holder_of(args.data_dir) if args.url is None else None
    if holder is not None:  # the server it would start could not take the data directory
        print(f"llmgw: {args.data_dir} is in use by {holder.get('command', 'another process')} "
              f"(pid {holder.get('pid', 'unknown')}); send traffic through it with --url", file=sys.stderr)  # fmt: skip
        return 2
    if args.profile is not None:
        if args.policy is not None or args.route:
            print("llmgw traffic: --profile brings its own policy and routes; drop --policy/--route", file=sys.stderr)
            return 2
        from .traffic_profile import serve_profile

        report = serve_profile(args.profile, args.data_dir, n=args.n, seed=args.seed, port=args.port, url=args.url)
        print(f"policy: {args.data_dir / f'traffic-{args.profile}.yaml'}")
    else:
        report = serve_synthetic_traffic(
            args.policy or DEFAULT_POLICY, args.data_dir, n=args.n, routes=args.route or None, seed=args.seed,
            url=args.url, api_key=args.api_key or os.environ.get("LLMGW_API_KEY") or None, port=args.port,
        )  # fmt: skip
    print(f"sent {report.sent} requests: {report.ok} ok, {report.errors} errors; log in {report.data_dir}")
    print("by team:", ", ".join(f"{team} {count}" for team, count in report.by_team.most_common()))
    if report.errors:
        print("errors by reason:", *report.failure_lines(), sep="\n")
    if report.errors * 2 > report.sent:
        print(f"llmgw traffic: most requests failed ({report.errors} of {report.sent}); see the reasons above",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _import(args: argparse.Namespace) -> int:
    from .importing import import_traffic

    mapping = {}
    for item in args.map or ():
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            print(f"llmgw import: --map {item}: expected FIELD=COLUMN", file=sys.stderr)
            return 2
        mapping[field.strip()] = column.strip()
    try:
        report = import_traffic(args.format, args.files, args.data_dir, mapping)
    except ValueError as exc:
        print(f"llmgw import: {exc}", file=sys.stderr)
        return 2
    print(*report.lines(), sep="\n")
    return 1 if report.read and not report.imported and not report.already else 0


def _print_summary(summary: dict, indent: int = 0) -> None:
    for key, value in summary.items():
        if isinstance(value, dict) and value:
            print(" " * indent + f"{key}:")
            _print_summary(value, indent + 2)
        else:
            print(" " * indent + f"{key}: {value}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmgw", description="LLM gateway with replayable policies")
    p.add_argument("--version", action="version", version=f"llmgw {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the proxy and the dashboards")
    s.add_argument("--host", default=DEFAULT_HOST)
    s.add_argument("--port", type=_port, default=DEFAULT_PORT)
    s.add_argument(
        "--policy",
        type=Path,
        default=DEFAULT_POLICY,
        help="live policy file (created from the bundled default if missing)",
    )
    s.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    s.add_argument("--drain-timeout", type=int, default=30, help="seconds to finish in-flight requests on SIGTERM")
    s.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="N processes on one port (N > 1 needs shared state when keys, budgets or rate limits "
                   "are on; docs/deploy.md)")  # fmt: skip
    s.add_argument("--no-dashboards", action="store_true", help="serve the API only")
    s.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS)
    s.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="the server's own logs: text lines, or JSON lines with one event per request "
                   "(default: $LLMGW_LOG_FORMAT, else text; docs/monitoring.md)")  # fmt: skip
    s.add_argument(
        "--open-dashboards", action="store_true",
        help="serve dashboards and /metrics without a token on a non-loopback address",
    )  # fmt: skip
    s.add_argument(
        "--protect-dashboards", action="store_true",
        help="require the dashboard token even on loopback (e.g. behind a reverse proxy)",
    )  # fmt: skip
    s.add_argument("--header-timeout", type=_seconds, default=HEADER_TIMEOUT_S, metavar="S",
                   help="close a connection whose request headers are not complete in S seconds (408)")  # fmt: skip
    s.add_argument("--body-timeout", type=_seconds, default=BODY_TIMEOUT_S, metavar="S",
                   help="answer 408 when a request body is not complete S seconds after its headers")  # fmt: skip
    s.set_defaults(func=_serve)

    pol = sub.add_parser("policy", help="validate, diff, promote and roll back policies").add_subparsers(
        dest="action", required=True
    )
    v = pol.add_parser("validate", help="check policy files; errors name their path")
    v.add_argument("files", nargs="+", type=Path)
    v.set_defaults(func=_validate)
    sc = pol.add_parser("schema", help="print the policy JSON Schema")
    sc.set_defaults(func=_schema)
    d = pol.add_parser("diff", help="what differs between two policies")
    d.add_argument("a", type=Path)
    d.add_argument("b", type=Path)
    d.set_defaults(func=_diff)
    pr = pol.add_parser("promote", help="validate CANDIDATE and make it the live policy")
    pr.add_argument("candidate", type=Path)
    pr.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the live policy file")
    pr.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the log to replay the candidate over (its recent window) for the forecast "
        "(default llmgw-data; one named here must exist)",
    )
    pr.add_argument("--forecast-window", default="7d", help="how far back the forecast replay reaches (7d, 36h, 90m)")
    pr.set_defaults(func=_promote)
    rb = pol.add_parser("rollback", help="restore the previous live policy")
    rb.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    rb.add_argument("--data-dir", type=Path, default=None, help="accepted for symmetry with serve")
    rb.set_defaults(func=_rollback)

    r = sub.add_parser("replay", help="replay a policy over the request log")
    r.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    r.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    r.add_argument("--since", default=None, help="UTC timestamp, e.g. 2026-11-26T10:00:00Z")
    r.add_argument("--until", default=None)
    r.add_argument("--json", action="store_true")
    r.add_argument(
        "--source",
        default=None,
        help="the log: a data directory, a directory of Parquet files or s3://bucket/prefix (default: --data-dir)",
    )
    r.add_argument(
        "--key-history",
        type=Path,
        default=None,
        help="the data directory whose keys/ a --source that is not a data directory replays keys' settings from",
    )
    r.add_argument(
        "--engine",
        choices=("local", "dask", "ray"),
        default=None,
        help="replay in partitions on local processes, Dask or Ray (docs/replay-distributed.md)",
    )
    r.add_argument("--partitions", type=_count, default=None, help="partitions (default: this machine's cores)")
    r.add_argument("--scheduler", default=None, help="dask: a running scheduler's address (default: a local cluster)")
    r.add_argument(
        "--as-served",
        action="store_true",
        help="replay each request under the policy version that served it (--policy's history), not --policy alone",
    )
    r.set_defaults(func=_replay)

    fc = sub.add_parser("forecast", help="forecast vs actual").add_subparsers(dest="action", required=True)
    fk = fc.add_parser("check", help="compare the live policy's recorded forecast with the log since its promotion")
    fk.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the live policy file")
    fk.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    fk.add_argument("--json", action="store_true")
    fk.set_defaults(func=_forecast)

    ro = sub.add_parser("route", help="explain routing decisions").add_subparsers(dest="action", required=True)
    ex = ro.add_parser("explain", help="which targets a request would try, in which order, and why")
    ex.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    ex.add_argument("--model", required=True, help="the model name a client would send (the route)")
    ex.add_argument("--metadata", default=None, help='request metadata as JSON, e.g. \'{"tier": "gold"}\'')
    ex.add_argument("--user", default=None, help="the body's user field (sticky: user, user matchers)")
    ex.add_argument("--prompt-tokens", type=_tokens, default=0, help="prompt size (estimate: characters / 4)")
    ex.add_argument("--request-id", default="req_explain", help="the id weighted draws hash (without sticky)")
    ex.set_defaults(func=_explain)

    from .traffic_profile import PROFILES

    t = sub.add_parser("traffic", help="serve synthetic traffic through a real server (for demos and notebooks)")
    t.add_argument("--policy", type=Path, default=None, help=f"the policy to serve (default: {DEFAULT_POLICY})")
    t.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="realistic traffic: teams, keys, a day's shape, repeats and paraphrases, targets that differ "
                   "in price, latency and failure rate (serves its own policy)")  # fmt: skip
    t.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    t.add_argument("-n", type=_count, default=200, help="number of requests")
    t.add_argument("--route", action="append", help="route to use (repeatable; default: every route)")
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--url", default=None, help="use a running server instead of starting one")
    t.add_argument("--api-key", default=None, help="a virtual key to send (default: $LLMGW_API_KEY)")
    t.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="P",
        help="the port of the server it starts (default: $LLMGW_TRAFFIC_PORT, else a free one)",
    )
    t.set_defaults(func=_traffic)

    im = sub.add_parser("import", help="write traffic served elsewhere into a request log")
    im.add_argument("format", choices=("openai", "litellm", "portkey", "table"))
    im.add_argument("files", nargs="+", type=Path, help=".jsonl, .json, .csv or .parquet")
    im.add_argument("--data-dir", type=Path, required=True, help="the data directory to write (no server may hold it)")
    im.add_argument("--map", action="append", metavar="FIELD=COLUMN", help="table: which column holds a field")
    im.set_defaults(func=_import)

    from .keys.cli import add_parsers

    add_parsers(sub)
    pr_ = sub.add_parser("pricing", help="price tables").add_subparsers(dest="action", required=True)
    pr_.add_parser(
        "import", help="print a policy pricing: section from a LiteLLM or Portkey pricing file "
        "(llmgw pricing import --format litellm|portkey FILE [--provider P] [--model M] [--include-cached])",
    )  # fmt: skip
    return p


# Commands that write the data directory themselves rather than through the running server
# (the key and credential commands call its admin API): they hold the directory's lock while
# they run, so they never write behind a server's back (docs/server.md, "Data directory").
# Every other command only reads it (replay, route explain) or does not touch it (policy).
_WRITES_DATA_DIR: dict[tuple[str, str | None], str] = {
    ("import", None): "stop the server, or import into another data directory and read both with "
    "open_log([served, imported])",
    ("keys", "rotate-master"): "stop the server first: it keeps the secrets in memory under the old "
    "master key and would write them back with it",
}


def _data_dir_lock(args: argparse.Namespace) -> contextlib.AbstractContextManager[object]:
    action = getattr(args, "action", None)
    advice = _WRITES_DATA_DIR.get((args.command, action))
    if advice is None:
        return contextlib.nullcontext()
    from .datadir import DataDirLock

    return DataDirLock(args.data_dir, " ".join(filter(None, ("llmgw", args.command, action))), advice)


def main(argv: list[str] | None = None) -> int:
    from .datadir import DataDirUnavailable
    from .policy.load import PolicyError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["pricing", "import"]:  # its own parser (llmgw_kernel.pricing.importers)
        from .pricing.importers import main_import

        return main_import(argv[2:])
    args = parser().parse_args(argv)
    try:
        with _data_dir_lock(args):
            return int(args.func(args) or 0)
    except DataDirUnavailable as exc:  # held by another process, or not writable
        print(f"llmgw: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"llmgw: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `llmgw ... | head`: the reader went away; stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush writes nowhere
        return 141  # 128 + SIGPIPE, the shell's status for a writer whose pipe closed


if __name__ == "__main__":
    sys.exit(main())
