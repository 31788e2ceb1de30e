"""mkdocs hook: a docs page may link to a repository file outside docs/ (``../README.md``,
``../bench/RESULTS.md``), as pages read on GitHub do. The site does not publish those files,
so such a link becomes its text followed by the file's path; a link to a file that does not
exist is left as it is, for ``mkdocs build --strict`` to report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    here = (docs / page.file.src_path).parent

    def outside(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        path = (here / target).resolve()
        if path.is_relative_to(docs) or not path.is_relative_to(repo) or not path.exists():
            return match.group(0)
        return f"{match.group(1)} (`{path.relative_to(repo)}` in the repository)"

    return _LINK.sub(outside, markdown)
