"""The desktop job's first process: report the server's port to the hub, then run the server.

``jupyter-vnc-singleuser jupyterhub-singleuser [args]`` does what batchspawner's
``batchspawner-singleuser`` does (a free port, POSTed to the hub's ``/hub/api/batchspawner``, where the
spawner waits for it; the server started in this same process on that port) and starts the server
sooner (measured by benchmarks/spawn_latency.py's "job start" stage):

- It imports neither batchspawner nor ``requests``: batchspawner's package imports JupyterHub's API
  handlers, database layer and migrations (sqlalchemy, alembic), which a job never uses (~0.7 s of a
  2-core node's time at every start).
- jsonschema's IRI format checker, ``rfc3987_syntax``, builds ~35 Earley parsers when it is imported
  (~0.8 s), and jupyter_events imports it with jsonschema as the server starts; no Jupyter schema
  uses the "iri" formats. It is loaded when a schema first checks one, not before (the same answer,
  later). Known upstream: python-jsonschema/jsonschema#1428.

Standard library only, before the server's own imports: this module is on the path of every spawn.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import shutil
import socket
import ssl
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlparse, urlunparse

IRI_MODULE = "rfc3987_syntax"
REPORT_TRIES = 5


class LaunchError(RuntimeError):
    """What the job's log says when the server cannot be started for the hub."""


def defer_iri_checker(modules: dict[str, Any] = sys.modules) -> bool:
    """Stand a stub in for ``rfc3987_syntax`` whose checker imports the real module on its first call.

    jsonschema binds ``is_valid_syntax`` once, at its own import: the stub's function then hands every
    call on to the real one. Nothing is done when the module is missing (jsonschema then has no IRI
    checker anyway) or already imported. True when the stub was installed."""
    if IRI_MODULE in modules or importlib.util.find_spec(IRI_MODULE) is None:
        return False
    stub = types.ModuleType(IRI_MODULE)
    real: list[Callable[..., Any]] = []

    def is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
        if not real:
            if modules.get(IRI_MODULE) is stub:
                del modules[IRI_MODULE]
            real.append(importlib.import_module(IRI_MODULE).is_valid_syntax)
        return real[0](*args, **kwargs)

    stub.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    modules[IRI_MODULE] = stub
    return True


def free_port() -> int:
    """A port the kernel has just handed out, as batchspawner picks one (the server binds it next)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _ssl_context(env: Mapping[str, str]) -> ssl.SSLContext | None:
    """The hub's internal_ssl certificates, where the hub hands them to its servers."""
    cert, key = env.get("JUPYTERHUB_SSL_CERTFILE"), env.get("JUPYTERHUB_SSL_KEYFILE")
    if not (cert and key):
        return None
    context = ssl.create_default_context(cafile=env.get("JUPYTERHUB_SSL_CLIENT_CA") or None)
    context.load_cert_chain(cert, key)
    return context


def report_port(port: int, env: Mapping[str, str], sleep: Callable[[float], None] = time.sleep) -> None:
    """POST the port to the hub as batchspawner-singleuser does. A hub that is briefly away is asked
    again; one that refuses, or stays away, is a LaunchError (the job ends and its log says why,
    rather than a server starting that the hub never learns of)."""
    api = env.get("JUPYTERHUB_API_URL", "")
    token = env.get("JUPYTERHUB_API_TOKEN", "")
    if not (api and token):
        raise LaunchError("JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are not set: a hub's job sets them")
    url = api.rstrip("/") + "/batchspawner"
    request = urllib.request.Request(
        url,
        data=json.dumps({"port": port}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    context = _ssl_context(env)
    for attempt in range(REPORT_TRIES):
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                answer.read()
            return
        except urllib.error.HTTPError as e:  # the hub answered: asking again changes nothing
            raise LaunchError(f"the hub refused the server's port at {url}: HTTP {e.code} {e.reason}") from e
        except OSError as e:
            if attempt == REPORT_TRIES - 1:
                raise LaunchError(f"the hub at {url} did not answer ({e}); the server was not started") from e
            sleep(0.5 * 2**attempt)


def with_port(env: MutableMapping[str, str], args: list[str], port: int) -> None:
    """The server listens on the port the hub was told: JupyterHub 2+ hands the server its URL in
    JUPYTERHUB_SERVICE_URL, older hubs took ``--port``."""
    service_url = env.get("JUPYTERHUB_SERVICE_URL", "")
    if service_url:
        url = urlparse(service_url)
        env["JUPYTERHUB_SERVICE_URL"] = urlunparse(url._replace(netloc=f"{url.hostname}:{port}"))
    else:
        args.append(f"--port={port}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: jupyter-vnc-singleuser jupyterhub-singleuser [server arguments]", file=sys.stderr)
        return 2
    program = shutil.which(args[0])
    if program is None:
        print(f"jupyter-vnc-singleuser: {args[0]!r} not found on PATH", file=sys.stderr)
        return 127
    defer_iri_checker()
    port = free_port()
    try:
        report_port(port, os.environ)
    except LaunchError as e:
        print(f"jupyter-vnc-singleuser: {e}", file=sys.stderr)
        return 1
    server_args = args[1:]
    with_port(os.environ, server_args, port)
    sys.argv = [program, *server_args]
    runpy.run_path(program, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
