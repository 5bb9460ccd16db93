"""MkDocs hook: links from docs/ to files of the repository outside docs/.

The Markdown pages link to the code they describe (``[deploy/...](../deploy/...)``), which
works when reading them in the repository; the site holds only docs/, so MkDocs reports
such links as not found and ``--strict`` fails. This hook checks that each such target
exists (a missing one fails the build, naming the page) and renders the link as the
target's repository path in code, which the site can show without a dead link.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^ *```", re.M)


def _rewrite(text: str, page_dir: Path, docs: Path, root: Path, page: str) -> str:
    def replace(match: re.Match[str]) -> str:
        label, target = match.groups()
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return match.group(0)
        path = target.split("#", 1)[0]
        if not path:
            return match.group(0)
        resolved = (page_dir / path).resolve()
        if resolved.is_relative_to(docs):
            return match.group(0)  # MkDocs checks links inside docs/ itself
        if not resolved.exists():
            raise PluginError(f"{page} links to {target}, which does not exist")
        shown = resolved.relative_to(root).as_posix() + ("/" if resolved.is_dir() else "")
        if label.strip("`").rstrip("/") == shown.rstrip("/"):
            return f"`{shown}`"
        return f"{label} (`{shown}`)"

    return _LINK.sub(replace, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    page_dir = (docs / page.file.src_path).parent
    parts = _FENCE.split(markdown)
    # even parts are prose, odd parts are inside fences: leave code as it is
    for index in range(0, len(parts), 2):
        parts[index] = _rewrite(parts[index], page_dir, docs, root, page.file.src_path)
    fences = _FENCE.findall(markdown)
    out = [parts[0]]
    for fence, part in zip(fences, parts[1:], strict=True):
        out += [fence, part]
    return "".join(out)
