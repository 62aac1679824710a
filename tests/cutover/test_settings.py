"""The cut-over's settings as the journal keeps them: what a journal recorded before a setting
existed still reads, and every nginx option recorded at init reaches the mirror engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookshift import cutover
from hookshift.cutover import journal, nginx_ops
from hookshift.cutover.settings import Settings

SHAPE = nginx_ops.SHAPES["mirror-stage"]

# A header's settings as the hookshift before --nginx-prefix wrote them (every field then known)
BEFORE_NGINX_PREFIX: dict[str, Any] = {
    "config": "/etc/nginx/nginx.conf",
    "path": "/callback",
    "stage_url": "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
    "domain_url": None,
    "domain_target": None,
    "queue": None,
    "endpoint_url": None,
    "region": None,
    "parity_log": "/var/log/nginx/hookshift-parity.log",
    "nginx_log": None,
    "nginx_bin": "/usr/sbin/nginx",
    "resolvers": [],
    "ca_file": None,
    "server_name": None,
    "listen": None,
    "backup_dir": None,
    "relay_socket": None,
    "stage_dns": None,
    "mirror_error_log": None,
    "archive": "/var/lib/hookshift/archive",
    "watch_state": None,
    "min_window": 3600.0,
    "min_events": 100,
    "quiet_period": 86400.0,
    "probe_timeout": 10.0,
    "execution_log": None,
    "parity_grace": None,
}


def test_a_journal_from_before_nginx_prefix_reads_and_runs_nginx_without_p(
    tmp_path: Path,
) -> None:
    state = tmp_path / "cutover.jsonl"
    first = journal.next_entry(None, action="init", to_stage="baseline", note="cut-over started")
    journal.create(state, BEFORE_NGINX_PREFIX, first)

    seen = cutover.status(state)

    assert seen.stage == "baseline"
    settings = Settings.from_json(seen.journal.settings)
    assert settings.nginx_prefix is None
    assert settings.archive == "/var/lib/hookshift/archive"
    assert nginx_ops.mirror_request(settings, SHAPE).nginx_prefix is None
    assert nginx_ops.prefix_of(settings) is None


def test_the_recorded_nginx_prefix_goes_with_every_request_to_the_engine(tmp_path: Path) -> None:
    settings = Settings.from_json({**BEFORE_NGINX_PREFIX, "nginx_prefix": str(tmp_path)})

    assert settings.to_json()["nginx_prefix"] == str(tmp_path)
    assert nginx_ops.mirror_request(settings, SHAPE).nginx_prefix == tmp_path
    assert nginx_ops.prefix_of(settings) == tmp_path
