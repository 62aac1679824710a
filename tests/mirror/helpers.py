"""Shared by the mirror and nginx tests: copies of the corpus, a test CA, plan options."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme

from hookshift.mirror.plan import MirrorOptions

CORPUS = Path(__file__).resolve().parents[1] / "nginx" / "corpus"
STAGE_URL = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"


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
