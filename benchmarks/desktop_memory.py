"""Memory of one idle desktop, and what is left behind when the Jupyter server stops: ours vs the peer.

For each kind: start a Jupyter server (as the test user, private home), open the desktop and wait until
XFCE has drawn it, disconnect, let it settle ``--settle`` s, then sum over every process the desktop
start created (Xvnc, the vncserver wrapper, XFCE, D-Bus, at-spi, agents, our reaper; the Jupyter server
itself is left out):

- PSS (``Pss`` of /proc/PID/smaps_rollup): shared pages divided among the processes that map them, so
  the sum is what the desktop costs the machine. The goal (ours <= 0.7x the peer) is judged on it.
  It also shrinks when *other* desktops share the same libraries: on a shared machine, a desktop of
  someone else running during one measurement and not the other skews it (the script says when);
- RSS (``VmRSS``): counts a shared library once per process (over-states a 15-process desktop) but
  does not depend on what else runs;
- USS (``Private_Clean + Private_Dirty``): pages only that process maps (a library page becomes
  "shared" as soon as any other process maps it, so this moves with the rest of the machine too).

The processes of a desktop are those carrying the run's environment marker, their sessions and their
descendants (see common.py). Then the server gets SIGTERM; once it has exited, and ``--linger`` s later,
the processes of its run still alive are counted as left behind (and then ended by the script).
Kinds alternate over ``--rounds`` rounds, one desktop at a time, after one unmeasured desktop of each
kind (XFCE writes its settings when it first ends, so every measured run finds a used home). Nothing
but the two kinds of Jupyter server is started (as root; no hub, no Slurm).

Prints every round (with how many other X servers ran on the machine: other people's desktops move PSS
and USS), the per-process breakdown of each kind's last desktop, the medians and ratios, and last
``RESULT ours_pss_mib=... peer_pss_mib=... ours_rss_mib=... peer_rss_mib=... ours_uss_mib=...
peer_uss_mib=... pss_ratio=... rss_ratio=... uss_ratio=... ours_procs=... peer_procs=... ours_left=...
peer_left=... goal_pss_ratio_le_0.7=met|missed pss_disturbed=0|1 virtualgl=default|session rounds=N``. With
``--virtualgl session`` ours runs its whole session under VirtualGL, as it does on a GPU node (here on
Mesa's software EGL device).

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/desktop_memory.py [--rounds 2] [--settle 10]
             [--virtualgl default|session]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys

import common
from common import fmt, log, median, ratio

MIB = 1024  # KiB per MiB
FIGURES = ("pss", "rss", "uss")


def other_x_servers(mine: set[int]) -> int:
    """X servers on the machine that are not this run's (other people's desktops)."""
    return sum(
        1
        for pid, p in common.proc_table().items()
        if pid not in mine and p.state not in {"Z", "X"} and p.name in common.X_SERVERS
    )


async def measure(
    bench: common.Bench, kind: str, settle: float, linger: float, extra: tuple[str, ...] = ()
) -> dict:
    server = bench.start(kind, extra=extra if kind == "ours" else ())
    try:
        server.wait_answering()
        await common.open_desktop(server)
        await asyncio.sleep(settle)
        procs = common.run_pids(server.run_id)
        rows = [
            (p.name, *common.memory_kib(pid)) for pid, p in sorted(procs.items()) if pid != server.proc.pid
        ]
        server_pss = common.memory_kib(server.proc.pid)[0]
        others = other_x_servers(set(procs))
    finally:
        left = bench.finish(server, settle=linger)
    m = {f: sum(row[1 + i] for row in rows) / MIB for i, f in enumerate(FIGURES)}
    return {
        **m,
        "rows": rows,
        "server_pss": server_pss / MIB,
        "left": sorted(p.name for p in left),
        "others": others,
    }


def breakdown(rows: list[tuple[str, int, int, int]]) -> list[str]:
    groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for name, *figures in rows:
        g = groups[name]
        g[0] += 1
        for i, value in enumerate(figures):
            g[1 + i] += value
    ordered = sorted(groups.items(), key=lambda kv: -kv[1][1])
    return [
        f"  {n:>2} x {name:<16} PSS {pss / MIB:6.1f}  RSS {rss / MIB:6.1f}  USS {uss / MIB:6.1f} MiB"
        for name, (n, pss, rss, uss) in ordered
    ]


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2, help="desktops of each kind (default 2)")
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before measuring")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds after the server exits")
    parser.add_argument(
        "--virtualgl", choices=["default", "session"], default="default",
        help="session: ours with its whole session under VirtualGL, as on a GPU node (default: as here)",
    )  # fmt: skip
    args = parser.parse_args()
    extra = ("--VNCDesktop.virtualgl=session",) if args.virtualgl == "session" else ()

    bench = common.Bench("desktop_memory")
    results: dict[str, list[dict]] = {"ours": [], "peer": []}
    try:
        log("## priming: one unmeasured desktop of each kind, so that every measured run finds a used home")
        for kind in ("ours", "peer"):
            await bench.prime(kind)
        log(
            f"## {args.rounds} rounds, one idle desktop at a time, {args.settle:g} s settle;"
            f" screen {common.peer.geometry()}"
        )
        for r in range(args.rounds):
            for kind in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
                m = await measure(bench, kind, args.settle, args.linger, extra)
                results[kind].append(m)
                left = f"{len(m['left'])}" + (f" ({', '.join(m['left'])})" if m["left"] else "")
                log(
                    f"round {r + 1} {kind}: {len(m['rows'])} processes, PSS {m['pss']:5.1f} MiB,"
                    f" RSS {m['rss']:5.1f} MiB, USS {m['uss']:5.1f} MiB (the Jupyter server, not"
                    f" counted: PSS {m['server_pss']:.1f} MiB); {m['others']} other X server(s) on the"
                    f" machine; left behind after SIGTERM: {left}"
                )
    finally:
        bench.close()

    for kind in ("ours", "peer"):
        log(f"## {kind}: processes of its last desktop")
        for line in breakdown(results[kind][-1]["rows"]):
            log(line)
    med = {k: {f: median([m[f] for m in v]) for f in FIGURES} for k, v in results.items()}
    ratios = {f: ratio(med["ours"][f], med["peer"][f]) for f in FIGURES}
    procs = {k: median([len(m["rows"]) for m in v]) for k, v in results.items()}
    left = {k: max(len(m["left"]) for m in v) for k, v in results.items()}
    disturbed = len({m["others"] for v in results.values() for m in v}) > 1
    goal = "met" if ratios["pss"] <= 0.7 else "missed"
    log("## medians")
    for kind in ("ours", "peer"):
        log(
            f"{kind}: PSS {fmt(med[kind]['pss'], 1)} MiB, RSS {fmt(med[kind]['rss'], 1)} MiB,"
            f" USS {fmt(med[kind]['uss'], 1)} MiB; {procs[kind]:g} processes;"
            f" at most {left[kind]} left behind after SIGTERM"
        )
    log(
        f"ours/peer PSS {fmt(ratios['pss'], 3)} (goal <= 0.7: {goal}), RSS {fmt(ratios['rss'], 3)},"
        f" USS {fmt(ratios['uss'], 3)}"
    )
    if disturbed:
        log(
            "note: the number of other desktops on the machine changed between measurements, which"
            " moves PSS and USS (shared pages split differently); compare RSS, which is not affected"
        )
    log(
        "RESULT"
        + "".join(
            f" ours_{f}_mib={fmt(med['ours'][f], 1)} peer_{f}_mib={fmt(med['peer'][f], 1)}" for f in FIGURES
        )
        + "".join(f" {f}_ratio={fmt(ratios[f], 3)}" for f in FIGURES)
        + f" ours_procs={procs['ours']:g} peer_procs={procs['peer']:g}"
        f" ours_left={left['ours']} peer_left={left['peer']} goal_pss_ratio_le_0.7={goal}"
        f" pss_disturbed={int(disturbed)} virtualgl={args.virtualgl} rounds={args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
