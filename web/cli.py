"""The `dispatch` command line. Bad arguments or input: a message on stderr, exit code 2."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from dispatch import accounts, centre_files, centres, config_file, demo
from dispatch.db import Database
from dispatch.errors import DispatchError, ImportRejected, InvalidInput
from dispatch.settings import DEFAULT_DB, Settings
from logs import first_run
from media.heap import freeze_startup_heap

from . import cli_db, cli_deploy, cli_logs, cli_schedules
from .schema import in_session, open_database

if TYPE_CHECKING:
    from aiohttp import web

EXIT_USAGE = 2
Command = Callable[[argparse.Namespace, Settings], int]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _common() -> _Parser:
    # SUPPRESS: a flag given after the subcommand must not reset one given before it.
    p = _Parser(add_help=False)
    p.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"database URL (env DISPATCH_DB, default {DEFAULT_DB})",
    )
    p.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="data folder (env DISPATCH_DATA, default ./var)",
    )
    p.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="FILE",
        type=Path,
        help="settings file, TOML (env DISPATCH_CONFIG); flags > environment > file",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="dispatch",
        parents=[common],
        description="平安调度 Pingan Dispatch — video dispatch of governance centres",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host", help="listen address (env DISPATCH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (env DISPATCH_PORT, default 8080)")
    serve.set_defaults(run=cmd_serve)

    demo_p = sub.add_parser("demo", parents=[common], help="demo data")
    demo_sub = demo_p.add_subparsers(dest="demo_command", required=True, parser_class=_Parser)
    load = demo_sub.add_parser("load", parents=[common], help="load the demo district (达川区)")
    load.add_argument("--scale", choices=["district", "province"], default="district")
    load.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing (exit 0) when the database already holds centres",
    )
    load.add_argument(
        "--history-weeks",
        type=int,
        default=0,
        metavar="N",
        help="after loading, play out the N weeks before this one: calls, sealed journals, "
        "issues, stored reports, and build this week's rota (make serve: 8)",
    )
    load.set_defaults(run=cmd_demo_load)
    cli_logs.register_demo(demo_sub, common)

    cen = sub.add_parser("centers", aliases=["centres"], parents=[common], help="centres")
    cen_sub = cen.add_subparsers(dest="centres_command", required=True, parser_class=_Parser)
    imp = cen_sub.add_parser("import", parents=[common], help="import centres from CSV or XLSX")
    imp.add_argument("file", type=Path)
    imp.add_argument("--format", choices=["csv", "xlsx"], help="default: from the file name")
    imp.set_defaults(run=cmd_centres_import)
    exp = cen_sub.add_parser("export", parents=[common], help="export centres to CSV or XLSX")
    exp.add_argument("file", type=Path)
    exp.add_argument("--format", choices=["csv", "xlsx"], help="default: from the file name")
    exp.add_argument("--under", metavar="CODE", help="only this centre and those below it")
    exp.set_defaults(run=cmd_centres_export)
    lst = cen_sub.add_parser("list", parents=[common], help="list centres")
    lst.add_argument("--under", metavar="CODE", help="only this centre and those below it")
    lst.add_argument("--level", choices=["district", "town", "village"])
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(run=cmd_centres_list)

    users = sub.add_parser("users", parents=[common], help="accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True, parser_class=_Parser)
    add = users_sub.add_parser("add", parents=[common], help="add an account")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=[r.value for r in accounts.Role])
    add.add_argument(
        "--centre",
        "--center",
        dest="centre",
        metavar="CODE",
        help="the account's centre (all roles but admin)",
    )
    add.add_argument("--name", default="", help="display name")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input instead of prompting",
    )
    add.set_defaults(run=cmd_users_add)
    cli_schedules.register(sub, common)
    cli_logs.register(sub, common)
    cli_logs.register_reports(sub, common)
    cli_db.register(sub, common)
    cli_deploy.register(sub, common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None) or os.environ.get("DISPATCH_CONFIG") or None
    return Settings.from_env(
        file=config_file.load(Path(path)) if path else None,
        db_url=getattr(args, "db", None),
        data_dir=getattr(args, "data_dir", None),
    )


def _open_db(settings: Settings) -> Database:
    return open_database(settings.db_url)


def _file_format(path: Path, given: str | None) -> str:
    fmt = given or path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput(
            "format", f"cannot tell the format of {path.name}; use --format csv|xlsx"
        )
    return fmt


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from . import logging_setup
    from .app import create_app

    settings = settings.with_(**{k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    logging_setup.configure(settings)  # DISPATCH_LOG_LEVEL, DISPATCH_LOG_FORMAT, redacted
    creds = in_session(settings.db_url,
                       lambda s: demo.demo_credentials(s) if centres.roots(s) else [])  # fmt: skip
    shown = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host
    url = f"http://{shown}:{settings.port}/login"
    if settings.public_url.rstrip("/") != Settings().public_url:  # behind a proxy: its address
        url = f"{settings.public_url.rstrip('/')}/login"

    def banner(_msg: str) -> None:
        print(f"平安调度 Pingan Dispatch is running. Log in at: {url}", flush=True)
        for role, username, password, name in creds:
            print(f"  {role:<18} {username:<14} {password:<20} {name}", flush=True)
        print("Press Ctrl+C to stop.", flush=True)

    app = create_app(settings)
    app.on_startup.append(_freeze_startup_heap)  # last: after every start-up context
    web.run_app(app, host=settings.host, port=settings.port, print=banner)
    return 0


async def _freeze_startup_heap(app: web.Application) -> None:
    """Start-up is over: no full garbage collection walks its objects again (media/heap.py)."""
    logging.getLogger(__name__).info("%d start-up objects frozen", freeze_startup_heap())


def cmd_demo_load(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 <= args.history_weeks <= first_run.MAX_WEEKS:
        raise InvalidInput("--history-weeks", f"from 0 to {first_run.MAX_WEEKS}")
    if args.history_weeks and args.scale != "district":
        raise InvalidInput("--history-weeks", "history is for the demo district only")
    db = _open_db(settings)
    try:
        with db.session() as s:
            if args.if_empty and centres.roots(s):
                print("demo: the database already holds centres; nothing loaded")
                return 0
            summary = demo.load_demo(s, args.scale)
        print(
            f"demo: loaded {summary.districts} district(s), {summary.towns} towns, "
            f"{summary.villages} villages, {summary.accounts} accounts "
            f"in {summary.seconds:.1f} s"
        )
        if args.history_weeks:
            print(f"demo: playing out the {args.history_weeks} weeks before this one …",
                  flush=True)  # fmt: skip
            with db.session() as s:
                lived = first_run.load_history(s, weeks=args.history_weeks,
                                               progress=lambda line: print(line, flush=True))
            print("\n".join(lived.lines()))
        with db.session() as s:
            for role, username, password, name in demo.demo_credentials(s):
                print(f"  {role:<18} {username:<14} {password:<20} {name}")
    finally:
        db.close()
    return 0


def cmd_centres_import(args: argparse.Namespace, settings: Settings) -> int:
    fmt = _file_format(args.file, args.format)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InvalidInput("file", f"cannot read {args.file}: {exc.strerror}") from None
    rows = settings.import_max_rows
    result = in_session(
        settings.db_url, lambda s: centre_files.import_centres(s, data, fmt, max_rows=rows)
    )
    print(
        f"imported {args.file}: {result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged"
    )
    return 0


def _under_path(session: Session, under: str | None) -> str | None:
    """The subtree of `--under CODE`, or None for everything."""
    return centres.get(session, centres.parse_code(under, "--under")).path if under else None


def cmd_centres_export(args: argparse.Namespace, settings: Settings) -> int:
    fmt = _file_format(args.file, args.format)
    def export(s: Session) -> bytes:
        return centre_files.export_centres(s, _under_path(s, args.under), fmt)

    data = in_session(settings.db_url, export)
    try:
        args.file.write_bytes(data)
    except OSError as exc:
        raise InvalidInput("file", f"cannot write {args.file}: {exc.strerror}") from None
    print(f"exported to {args.file} ({len(data)} bytes)")
    return 0


def cmd_centres_list(args: argparse.Namespace, settings: Settings) -> int:
    level = centres.parse_level(args.level) if args.level else None
    rows, _ = in_session(settings.db_url, lambda s: centres.search(
        s, _under_path(s, args.under), level=level, limit=10**9))  # fmt: skip
    for c in rows:
        if args.json:
            print(json.dumps(c.as_dict(), ensure_ascii=False))
        else:
            indent = "  " * c.depth
            print(
                f"{c.code}  {indent}{c.name}  [{c.level}, {c.centre_class} {c.target_year}]"
                + ("" if c.active else "  (inactive)")
            )
    return 0


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InvalidInput("password", "the two entries differ")
    else:
        raise InvalidInput("password", "no terminal to prompt on; use --password-stdin")
    db = _open_db(settings)
    try:
        with db.session() as s:
            account = accounts.create_account(
                s,
                username=args.username,
                password=password,
                role=args.role,
                centre_code=args.centre,
                display_name=args.name,
            )
            shown = account.as_dict()
    finally:
        db.close()
    print(f"added {shown['username']} ({shown['role']}, centre {shown['centre'] or '-'})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        settings = _settings(args)
        run: Command = args.run
        return run(args, settings)
    except UsageError as exc:
        print(parser.format_usage().rstrip(), file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportRejected as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        for p in exc.problems:
            print(f"  line {p.line}, column {p.column}: {p.reason}", file=sys.stderr)
        return EXIT_USAGE
    except DispatchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except OperationalError as exc:
        print(f"error: cannot use the database: {exc.orig}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`dispatch centers list | head`): not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
