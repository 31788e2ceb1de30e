"""From a worker's spawn to its first job's start (issue 19 §1: within 0.5 s), per store.

    python bench/spawn_probe.py [--stores sqlite,redis,cluster,postgres] [--rounds 5]
        [--code /work/main/src --code src] [--importtime] [--breakdown]

A first start per store and version is not counted (it writes the bytecode). Each round,
for each store and each version of conveyor (``--code``, put first on
PYTHONPATH; interleaved, so the machine's load falls on each alike): one job waits in a fresh
namespace, then ``python -m conveyor worker bench.spawn_app:app --burst`` is spawned, a real
process through the CLI, and the job's task writes the time it started and the process's
CPU so far. Printed per run: wall seconds from spawn to the job's start and the worker's CPU
seconds until then; medians per store and version at the end, with the load average.
``--importtime`` runs each store once more with ``python -X importtime`` and prints the
slowest imports (cumulative µs) of the worker's process. ``--breakdown`` starts the workers
through bench/spawn_trace.py and prints, per store and version, the median moment (ms from
spawn) of each step of the start: interpreter up, conveyor's CLI imported, the store's module
imported, the store open, the first claim sent and answered, the first beat, the first job.
"""

from __future__ import annotations

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def stores(kinds: list[str]) -> Iterator[dict[str, str]]:
    from tests.servers import PostgresServer, RedisCluster, RedisServer

    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for kind in kinds:
            if kind == "sqlite":
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="conveyor-spawn-"))
                urls[kind] = f"sqlite:///{folder}/jobs.db"
            elif kind == "redis":
                urls[kind] = stack.enter_context(RedisServer(appendonly=False)).url
            elif kind == "cluster":
                host, port = stack.enter_context(RedisCluster()).nodes[0]
                urls[kind] = f"redis+cluster://{host}:{port}"
            else:
                urls[kind] = stack.enter_context(PostgresServer()).create_database("spawn")
        yield urls


def one(
    url: str,
    namespace: str,
    code: str,
    importtime: bool = False,
    bytecode: bool = True,
    breakdown: bool = False,
) -> tuple[float, float, str, dict[str, float]]:
    """Spawn a worker with one job waiting: (seconds to its start, CPU seconds until then,
    the -X importtime report if asked, the moments of its start if asked: spawn_trace.py)."""
    env = dict(os.environ, SPAWN_URL=url, SPAWN_NS=namespace)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (code, str(REPO)) if p)
    # Bytecode cached, as an installed package has it (pip compiles it), in a folder of
    # this probe's per version of the code: with PYTHONDONTWRITEBYTECODE (set in some
    # shells here) every start compiles conveyor's source again, about 0.1 s of CPU.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(
            Path(tempfile.gettempdir()) / "spawn-probe-pyc" / Path(code).parent.name
        )
    else:  # as the shells here start it: a source tree without __pycache__ compiled every time
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    with tempfile.TemporaryDirectory() as folder:
        mark = Path(folder) / "mark"
        waiting = "from bench.spawn_app import mark; import sys; mark.enqueue(sys.argv[1])"
        subprocess.run([sys.executable, "-c", waiting, str(mark)], env=env, cwd=REPO, check=True)
        flags = ["-X", "importtime"] if importtime else []
        entry = "bench.spawn_trace" if breakdown else "conveyor"
        command = [sys.executable, *flags, "-m", entry, "worker", "bench.spawn_app:app", "--burst"]
        command += ["--log-level", "warning"]
        trace = Path(folder) / "trace"
        spawned = time.time()
        env.update(SPAWN_T0=repr(spawned), SPAWN_TRACE=str(trace))
        proc = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        started, cpu = (float(x) for x in mark.read_text().split())
        moments: dict[str, float] = {}
        if breakdown:
            for line in trace.read_text().splitlines():
                what, at = line.split("\t")
                moments[what] = float(at)
        return started - spawned, cpu, err, moments


def slowest_imports(report: str, n: int = 15) -> list[tuple[int, str]]:
    rows = []
    for line in report.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:") :].split("|")
            with contextlib.suppress(ValueError):
                rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stores", default="sqlite,redis,cluster,postgres")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--code", action="append", help="a src/ folder to take conveyor from")
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument(
        "--breakdown", action="store_true", help="time each step of the start (spawn_trace.py)"
    )
    parser.add_argument(
        "--no-bytecode", action="store_true", help="start with PYTHONDONTWRITEBYTECODE=1 (no cached bytecode)"
    )
    options = parser.parse_args()
    kinds = options.stores.split(",")
    codes = [str(Path(c).resolve()) for c in options.code] if options.code else [str(REPO / "src")]
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    steps: dict[tuple[str, str], dict[str, list[float]]] = {}
    loads: list[float] = []
    n = 0
    with stores(kinds) as urls:
        for kind in kinds:  # a first start of each, not counted: the bytecode is written
            for code in codes:
                n += 1
                one(urls[kind], f"sp{os.getpid()}_{n}", code, bytecode=not options.no_bytecode)
        for r in range(options.rounds):
            for kind in kinds:
                for code in codes:
                    n += 1
                    wall, cpu, _, moments = one(
                        urls[kind],
                        f"sp{os.getpid()}_{n}",
                        code,
                        bytecode=not options.no_bytecode,
                        breakdown=options.breakdown,
                    )
                    found.setdefault((kind, code), []).append((wall, cpu))
                    for what, at in [*moments.items(), ("first job started", wall)]:
                        steps.setdefault((kind, code), {}).setdefault(what, []).append(at)
                    loads.append(os.getloadavg()[0])
                    print(f"round {r + 1} {kind:8} {code:28} first job {wall:.3f} s, CPU {cpu:.3f} s,"
                          f" load {loads[-1]:.1f}", flush=True)  # fmt: skip
        if options.importtime:
            for kind in kinds:
                for code in codes:
                    n += 1
                    _, _, report, _ = one(urls[kind], f"sp{os.getpid()}_{n}", code, importtime=True)
                    print(f"\n{kind} {code}: slowest imports (cumulative µs)")
                    for us, name in slowest_imports(report):
                        print(f"  {us:8d} {name}")
    print(f"\nmedians of {options.rounds} (load average {min(loads):.1f}-{max(loads):.1f}):")
    for (kind, code), runs in found.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {kind:8} {code:28} first job {wall:.3f} s (CPU {cpu:.3f} s)")
    if options.breakdown:
        print("\nthe start, step by step (median ms from spawn; each step's median on its own):")
        for (kind, code), moments in steps.items():
            medians = sorted((statistics.median(ats), what) for what, ats in moments.items())
            print(f"  {kind} {code}:")
            for at, what in medians:
                print(f"    {at * 1000:7.1f}  {what}")


if __name__ == "__main__":
    main()
