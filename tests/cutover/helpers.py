"""A cut-over on a real nginx config (the rehearsal's sample) without the rest of the stack.

The gates need the whole stack (probes, parity); the crash and bad-input tests only need nginx's
files to move between stages, so `force` moves them with the mirror engine and journals the
move without asking the gates.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import trustme

from hookshift.cutover import journal, nginx_ops
from hookshift.cutover.settings import Settings
from hookshift.procs import free_port
from hookshift.rehearsal.nginx_server import write_sample_config

STAGE_URL = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"
DOMAIN_URL = "https://hooks.example.test"


@dataclass(frozen=True)
class Cutover:
    state: Path
    main: Path  # nginx.conf
    site: Path  # conf.d/callbacks.conf
    nginx_bin: str

    def files(self) -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in (self.main, self.site)}

    def settings(self) -> Settings:
        return Settings.from_json(journal.read(self.state).settings)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", *args],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip


def make(tmp_path: Path, nginx_bin: str, *init_args: str) -> Cutover:
    """A sample nginx config under ``tmp_path`` and a cut-over journal at baseline on it
    (``init_args``: more `cutover init` options)."""
    sample = write_sample_config(tmp_path / "nginx", app_port=free_port())
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    state = tmp_path / "cutover.jsonl"
    done = run(
        "cutover", "init", "--state", str(state), "--config", str(sample.main),
        "--path", sample.callback_path, "--stage-url", STAGE_URL, "--domain-url", DOMAIN_URL,
        "--nginx-bin", nginx_bin, "--resolver", f"127.0.0.1:{free_port()}",
        "--stage-dns", "runtime",  # the stage's name resolves nowhere (nginx -t must pass)
        "--ca-file", str(ca), "--backup-dir", str(tmp_path / "backup"),
        "--relay-socket", str(tmp_path / "relay.sock"),
        "--parity-log", str(sample.prefix / "logs" / "parity.log"), *init_args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return Cutover(state, sample.main, sample.site, nginx_bin)


def force(cut: Cutover, target: str, *, reload: bool = False) -> None:
    """Move nginx's files to ``target`` with the engine and journal it, without the gates."""
    current = journal.read(cut.state)
    settings = Settings.from_json(current.settings)
    files = nginx_ops.realize(cut.state, settings, current.stage, target, reload=reload)
    entry = journal.next_entry(current, action="advance", to_stage=target, files=files)
    journal.append(current, entry)


def nginx_t(cut: Cutover) -> subprocess.CompletedProcess[str]:
    """The real ``nginx -t`` on the config."""
    return subprocess.run(
        [cut.nginx_bin, "-t", "-c", str(cut.main)], capture_output=True, text=True, check=False
    )
