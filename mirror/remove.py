"""Take hookshift's lines out of every file of a config: the exact inverse of apply.

Removal needs no plan and no parser: every line ending in ``# hookshift`` goes, and every
`` # hookshift:split<EOL>`` is joined back (`nginx.splice.remove`), so each file comes back
byte-identical to what it was before apply. The same safe pipeline as apply writes it (lock,
backup, atomic write, ``nginx -t``, restore on failure, optional reload).
"""

from __future__ import annotations

import os
from pathlib import Path

from mirror.apply import ApplyResult, Edit, default_backup_dir, write_edits
from nginx import splice
from nginx.source import load_source


def removal_edits(config_path: Path) -> list[Edit]:
    """The edits that strip hookshift's lines from every file of the config (pure on texts)."""
    source = load_source(config_path)
    return [
        Edit(path, text, splice.remove(text))
        for path, text in sorted(source.texts.items())
        if splice.has_marks(text)
    ]


def remove_marked(
    config_path: Path,
    *,
    nginx_bin: str = "nginx",
    backup_dir: Path | None = None,
    reload: bool = False,
    prefix: Path | None = None,
) -> ApplyResult:
    """Remove every hookshift line from the config at `config_path` (no-op when there is none)."""
    config = Path(os.path.abspath(config_path))  # as nginx -c sees it (symlinks kept)
    return write_edits(
        removal_edits(config),
        config=config,
        nginx_bin=nginx_bin,
        backup_dir=backup_dir or default_backup_dir(),
        reload=reload,
        require_valid_original=False,
        prefix=prefix,
    )
