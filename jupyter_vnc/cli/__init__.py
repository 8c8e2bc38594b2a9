"""The admin command line: ``jupyter-vnc sessions | cancel | doctor | render-job``.

It reads the hub's own configuration file (``-f``, default ./jupyterhub_config.py or
/etc/jupyterhub/jupyterhub_config.py), so it sees the same spawner settings the hub uses.
"""

from __future__ import annotations

import argparse
import sys

from ..options import OptionsError
from . import doctor, render, sessions
from .hubapi import HubAPI, HubError
from .hubconfig import ConfigError, load


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jupyter-vnc", description="Operate jupyter-vnc desktops on a JupyterHub."
    )
    p.add_argument("-f", "--config", help="the hub's jupyterhub_config.py")
    p.add_argument("--token-file", help="file holding a hub API token (else $JUPYTERHUB_API_TOKEN or the"
                   " hub's service named jupyter-vnc)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sessions", help="list live desktops")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--all", action="store_true", help="include desktops that ended recently")
    c = sub.add_parser("cancel", help="end a desktop cleanly through the hub")
    c.add_argument("target", metavar="USER[/SERVER]")
    sub.add_parser("doctor", help="check that everything a desktop needs is in place")
    r = sub.add_parser("render-job", help="print the job script a spawn would submit (dry run)")
    r.add_argument("--user", required=True)
    r.add_argument("--server", default="", help="named server (default: the user's default server)")
    r.add_argument("--options", default="{}", help='user options as JSON, e.g. \'{"gpus": 1, "hours": 4}\'')
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load(args.config, args.token_file)
        if args.command == "sessions":
            return sessions.run(settings, args.json, args.all)
        if args.command == "cancel":
            user, _, server = args.target.partition("/")
            HubAPI(settings.hub_url, settings.token).stop_server(user, server)
            print(f"stopped {user}/{server}" if server else f"stopped {user}'s desktop")
            return 0
        if args.command == "doctor":
            return doctor.run(settings)
        if args.command == "render-job":
            print(render.render(settings, args.user, render.parse_options(args.options), args.server), end="")
            return 0
    except (ConfigError, HubError, OptionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
