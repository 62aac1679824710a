"""Shared by the mirror and nginx tests: copies of the corpus, a test CA, plan options."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme

from hookshift.mirror.plan import MirrorOptions

CORPUS = Path(__file__).resolve().parents[1] / "nginx" / "corpus"
STAGE_URL = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"
# Corpus case debian_stock with a mirror of hookshift's applied, as `mirror plan` made it once
# (--server-name hooks.example.com, Debian's defaults, nginx 1.22.1, run-time DNS keeping the
# stage's address 192.0.2.10): in the repository, outside /tmp, for what needs a config with a
# mirror where a systemd service could read it (`mirror refresh-units`). Without hookshift's
# lines it is debian_stock byte for byte (tests/mirror/test_refresh_units.py checks).
APPLIED = Path(__file__).resolve().parent / "applied" / "debian_stock" / "nginx.conf"


# what a systemd service with PrivateTmp=yes does not see of the host
PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))


@contextlib.contextmanager
def seen_by_a_service(config: Path) -> Iterator[Path]:
    """`config` (a main config in the repository), or the same file in a copy of its directory
    that a service with a private /tmp can see: `mirror refresh-units` refuses a config such a
    service could not read, and a clone of the repository may sit under /tmp. The copy goes in
    /var/lib, which needs root (as CI runs); elsewhere the test is skipped, saying why."""
    tree = config.parent
    if not any(tree.resolve().is_relative_to(top) for top in PRIVATE_TMP):
        yield config
        return
    if os.geteuid() != 0:
        pytest.skip(f"{tree} is under /tmp, which the service's private /tmp hides; a copy "
                    "outside it needs root (/var/lib)")  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="hookshift-tests-", dir="/var/lib"))
    try:
        shutil.copytree(tree, base / tree.name, symlinks=True)
        yield base / tree.name / config.name
    finally:
        shutil.rmtree(base, ignore_errors=True)


def copy_case(name: str, dest: Path) -> Path:
    """A private copy of corpus case `name` (certs generated for the TLS case); its main file."""
    root = dest / name
    shutil.copytree(CORPUS / name, root, symlinks=True)
    (root / "logs").mkdir(exist_ok=True)
    if name == "tls":
        ca = trustme.CA()
        cert = ca.issue_cert("secure.example.com")
        (root / "certs").mkdir()
        cert.private_key_pem.write_to_path(str(root / "certs" / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(root / "certs" / "server.pem"))
    return root / "nginx.conf"


def snapshot(root: Path) -> dict[Path, bytes]:
    """Every file under `root` (logs left out), byte for byte."""
    return {
        p: p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and "logs" not in p.relative_to(root).parts
    }


def options(config: Path, path: str, ca_file: Path, **overrides: Any) -> MirrorOptions:
    base = MirrorOptions(
        config=config,
        path=path,
        stage_url=STAGE_URL,
        parity_log=config.parent / "logs" / "parity.log",
        trusted_ca=ca_file,
        relay_socket=str(config.parent / "relay.sock"),
        # STAGE_URL's host resolves nowhere: nginx -t passes only when nginx resolves it at
        # run time (with --resolver), not at load time (the default before 1.27.3)
        stage_dns="runtime",
    )
    return replace(base, **overrides)
