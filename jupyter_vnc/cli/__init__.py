"""The admin command line: ``jupyter-vnc sessions | cancel | doctor | render-job | config-help``.

It reads the hub's own configuration file (``-f``, default ./jupyterhub_config.py or
/etc/jupyterhub/jupyterhub_config.py), so it sees the same spawner settings the hub uses.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from typing import Any

from traitlets import TraitError

from .. import __version__
from ..options import OptionsError
from ..registry import RegistryConfigError
from .errors import EXIT_CODES, OK, USAGE, CLIError
from .hubapi import HubAPI
from .hubconfig import load

RAW = argparse.RawDescriptionHelpFormatter
JSON_ERROR = '{"error": "what went wrong (also on stderr)", "exit_code": N}'
JSON_OUTPUT = f"""\
--json: one JSON document on stdout, its shape given in each command's --help; on an error it is
  {JSON_ERROR}
"""

# What --json prints, per command. Scripts rely on these keys: add keys, never rename or drop one.
SHAPES = {
    "sessions": """\
{"sessions": [{"user": str, "server": str ("" = default), "job_id": str, "state": "queued" | "running"
               | "unknown" | "stopped" | "failed", "node": str, "gpus": int, "memory_gb": int,
               "resolution": str, "partition": str, "submitted": epoch seconds, "started": epoch | null,
               "ends_at": epoch | null, "message": str, "seconds_left": int | null}, ...],
 "skipped": [registry keys that hold no valid session, ...]}""",
    "cancel": '{"user": str, "server": str ("" = default), "stopped": true}',
    "doctor": """\
{"ok": bool (no FAIL), "failed": int, "warned": int,
 "checks": [{"status": "OK" | "WARN" | "FAIL", "check": str, "detail": str}, ...]}""",
    "config-help": """\
{"hub" | "server": {class name: {trait name: {"help": str, "default": str (Python repr)}, ...}, ...}}""",
    "render-job": """\
{"user": str, "server": str, "request": {"gpus": int, "memory_gb": int, "hours": float, "resolution": str,
 "partition": str, ...the other validated options}, "script": str (the job script, as sbatch gets it)}""",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jupyter-vnc",
        description="Operate jupyter-vnc desktops on a JupyterHub.",
        epilog=JSON_OUTPUT + "\n" + EXIT_CODES,
        formatter_class=RAW,
    )
    p.add_argument("--version", action="version", version=f"jupyter-vnc {__version__}")
    p.add_argument("-f", "--config", help="the hub's jupyterhub_config.py")
    p.add_argument("--token-file", help="file holding a hub API token (else $JUPYTERHUB_API_TOKEN or the"
                   " hub's service named jupyter-vnc)")  # fmt: skip
    p.add_argument("--hub-url", help="the hub's URL with its base_url, e.g. http://127.0.0.1:8081 (default:"
                   " c.JupyterHub's hub_connect_url, hub_bind_url, hub_ip/hub_port or bind_url)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output (also after the command)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        c = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"--json prints:\n{SHAPES[name]}\non an error: {JSON_ERROR}\n\n{EXIT_CODES}",
            formatter_class=RAW,
        )
        # SUPPRESS: without it the command's default (False) would overwrite a --json given before it.
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output (below)")
        return c

    s = command("sessions", "list live desktops")
    s.add_argument("--all", action="store_true", help="include desktops that ended recently")
    c = command("cancel", "end a desktop cleanly through the hub")
    c.add_argument("target", metavar="USER[/SERVER]")
    d = command("doctor", "check that everything a desktop needs is in place")
    d.add_argument(
        "--user",
        default="",
        help="also submit a short probe job as this user, through the spawner's own commands (exec_prefix,"
        " sudo, ssh), and check from its node what a desktop job needs: the commands it runs on the"
        " user's PATH, the hub's API from the node, the node's address from the hub",
    )
    command("config-help", "every setting of jupyter-vnc: the hub's and the user's server's (no hub needed)")
    r = command("render-job", "print the job script a spawn would submit (dry run)")
    r.add_argument("--user", required=True)
    r.add_argument("--server", default="", help="named server (default: the user's default server)")
    r.add_argument("--options", default="{}", help='user options as JSON, e.g. \'{"gpus": 1, "hours": 4}\'')
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    want_json = "--json" in argv
    try:
        args = _parse(argv, want_json)
    except SystemExit as e:  # argparse: --help and --version (0), or a usage error (2)
        return e.code if isinstance(e.code, int) else USAGE
    try:
        return _run(args)
    except CLIError as e:
        return _error(str(e), e.exit_code, args.json)
    except (OptionsError, RegistryConfigError, TraitError) as e:  # the hub's settings or the admin's input
        return _error(str(e), USAGE, args.json)


def _run(args: argparse.Namespace) -> int:
    # The commands are imported when run: render-job loads JupyterHub (most of a second), which
    # --help, --version and a usage error should not wait for.
    if args.command == "config-help":
        from . import confighelp

        _print(args.json, confighelp.as_json(), confighelp.as_text())
        return OK
    settings = load(args.config, args.token_file, args.hub_url)
    if args.command == "sessions":
        from . import sessions

        return sessions.run(settings, args.json, args.all)
    if args.command == "doctor":
        from . import doctor

        return doctor.run(settings, args.json, args.user)
    if args.command == "cancel":
        user, _, server = args.target.partition("/")
        if not user or "/" in server:
            return _error(f"cancel takes USER or USER/SERVER, not {args.target!r}", USAGE, args.json)
        HubAPI(settings.hub_url, settings.token).stop_server(user, server)
        _print(
            args.json,
            {"user": user, "server": server, "stopped": True},
            f"stopped {user}/{server}" if server else f"stopped {user}'s desktop",
        )
        return OK
    from . import render

    options = render.parse_options(args.options)
    script, request = render.render_job(settings, args.user, options, args.server)
    data = {"user": args.user, "server": args.server, "request": request, "script": script}
    _print(args.json, data, script)
    return OK


def _print(as_json: bool, data: Any, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def _error(message: str, code: int, as_json: bool) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}))
    return code


def _parse(argv: list[str], want_json: bool) -> argparse.Namespace:
    """argparse, with its usage errors also as JSON on stdout when --json was asked for."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parser().parse_args(argv)
    except SystemExit as e:
        if want_json and e.code == USAGE:
            message = captured.getvalue().strip().rsplit(": error: ", 1)[-1]
            print(json.dumps({"error": message, "exit_code": USAGE}))
        raise
    finally:
        sys.stderr.write(captured.getvalue())


if __name__ == "__main__":
    sys.exit(main())
