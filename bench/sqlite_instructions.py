"""What a no-op job costs on SQLite, in instructions: two code trees, counted by valgrind.

    python bench/sqlite_instructions.py --against /tmp/base/src [--jobs 2000] [--batch]

On a shared machine CPU time per job moves by 20% from one run to the next; the number of
instructions a process executes does not (valgrind's cachegrind counts them, 0.01% apart
between runs). For each tree (``--against``: a folder holding ``conveyor/``, e.g. ``git
archive main src | tar -x -C /tmp/base``; and this one), child processes run the same work
on a fresh SQLite file, N = ``--jobs`` jobs, stopping after each phase in turn; the
difference between two stops over N is a job's cost in that phase, Python's and SQLite's
together:

* enqueue: ``app.enqueue_many`` of 1,000 jobs at a time (the jobs built beforehand);
* claim+ack: ``fetch`` and ``complete`` of 100 at a time straight on the store;
* prune: the completed jobs deleted by ``recover``.

``--batch`` enqueues the jobs as one ``app.batch`` instead. What the count leaves out: the
kernel's work (the WAL's writes: ``time.process_time`` counts it, this does not) and memory
stalls. Needs ``valgrind`` on the PATH; about a minute a tree at 2,000 jobs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
PHASES = ("enqueue", "claim+ack", "prune")


def child(path: str, jobs: int, phases: int, batch: bool) -> None:
    from conveyor import Conveyor

    app = Conveyor(f"sqlite:///{path}", namespace="ins")

    @app.task(name="ins.noop")
    def noop(i: int) -> None: ...

    backend = app.backend
    specs = [noop.job(i) for i in range(jobs)]
    if phases >= 1:
        if batch:
            app.batch(specs, on_complete=noop.job(-1))
        else:
            for start in range(0, jobs, 1000):
                app.enqueue_many(specs[start : start + 1000])
    if phases >= 2:
        # Fixed clocks, so that both trees run the same statements with the same values.
        done, want = 0, jobs + (1 if batch else 0)
        while done < want:
            got = backend.fetch(["default"], 100, "w", 30.0, 1e9 + done)
            backend.complete([(r.id, None) for r in got], "w", 1e9 + done)
            done += len(got)
    if phases >= 3:
        backend.recover(2e9, 2e9)
    app.close()


def instructions(src: str, jobs: int, phases: int, batch: bool) -> int:
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/cachegrind.out"
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
        cmd += [sys.executable, str(HERE), "--child", f"{folder}/jobs.db", str(jobs), str(phases)]
        cmd += ["--batch"] if batch else []
        env = dict(os.environ, PYTHONPATH=src, PYTHONHASHSEED="0")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise RuntimeError(f"valgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), "--batch" in sys.argv[5:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", required=True, help="a tree holding conveyor/ (the A side)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", action="store_true", help="enqueue the jobs as one app.batch")
    options = parser.parse_args()
    trees = {"base": options.against, "this": str(HERE.parents[1] / "src")}
    found: dict[str, list[float]] = {}
    for name, src in trees.items():
        # Phase n's cost: N jobs taken through phase n, less N jobs through phase n - 1.
        marks = [instructions(src, options.jobs, n, options.batch) for n in range(len(PHASES) + 1)]
        found[name] = [(marks[n] - marks[n - 1]) / options.jobs for n in range(1, len(PHASES) + 1)]
        cells = "  ".join(f"{phase} {cost:9,.0f}" for phase, cost in zip(PHASES, found[name], strict=True))
        print(f"{name:5} {cells}   (instructions a job)", flush=True)
    base, this = found["base"], found["this"]
    cells = "  ".join(
        f"{phase} {100 * (b / a - 1):+6.1f}%" for phase, a, b in zip(PHASES, base, this, strict=True)
    )
    print(f"this against base: {cells}")


if __name__ == "__main__":
    main()
