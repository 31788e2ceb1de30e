"""The documentation site: ``mkdocs build --strict`` passes (no warning: broken links, missing
pages, bad API references), and every example marked runnable in docs/ runs.

A runnable example is a fenced ``python`` block preceded by the line ``<!-- runnable -->``
(invisible on the site). Each runs alone, as a script in a fresh directory, with
``$CONVEYOR_URL`` set to a new SQLite file there: it must stand on its own and finish by
itself (``app.worker(burst=True).run()`` to run its jobs), and its asserts are its test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

DOCS = ROOT / "docs"
MARK = "<!-- runnable -->"
_BLOCK = re.compile(r"^" + re.escape(MARK) + r"\n```python[^\n]*\n(.*?)^```", re.S | re.M)


def runnable_examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for n, code in enumerate(_BLOCK.findall(page.read_text())):
            found.append((f"{page.relative_to(DOCS)}#{n + 1}", code))
    return found


EXAMPLES = runnable_examples()


def test_docs_have_runnable_examples() -> None:
    assert len(EXAMPLES) >= 9, [name for name, _ in EXAMPLES]


def test_site_builds_with_no_warning(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "migrating" / "celery" / "index.html").exists()
    assert "Conveyor" in (tmp_path / "reference" / "index.html").read_text()


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_runnable_example(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db", "PYTHONPATH": str(ROOT / "src")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"


def test_links_to_repository_files_outside_docs_become_their_path() -> None:
    from types import SimpleNamespace

    from scripts.mkdocs_hooks import on_page_markdown

    page = SimpleNamespace(file=SimpleNamespace(src_path="stores/redis.md"))
    text = "[results](../../bench/RESULTS.md#redis), [gone](../../no-such.md), [sqlite](sqlite.md)"
    out = on_page_markdown(text, page, {"docs_dir": str(DOCS)}, None)
    assert out == (
        "results (`bench/RESULTS.md` in the repository), [gone](../../no-such.md), [sqlite](sqlite.md)"
    )
