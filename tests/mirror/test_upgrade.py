"""An install made with hookshift's previous layout (the copy travels to the stage before the
callback is done) is upgraded by ``apply`` in one validated edit, and ``remove`` still brings
back the user's bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.mirror.apply import apply_plan
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.mirror.remove import remove_marked

PREVIOUS = Path(__file__).parent / "previous"


def _fill(name: str, prefix: Path) -> str:
    return (PREVIOUS / name).read_text().replace("PREFIX", str(prefix))


@pytest.mark.e2e
def test_the_previous_layout_is_upgraded_in_place_and_removed_byte_for_byte(
    tmp_path: Path, nginx_bin: str, ca_file: Path
) -> None:
    (tmp_path / "ca.pem").write_bytes(ca_file.read_bytes())
    config = tmp_path / "nginx.conf"
    config.write_text(_fill("nginx.conf.applied.in", tmp_path))
    options = MirrorOptions(
        config=config,
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        resolvers=("127.0.0.1",),
        parity_log=tmp_path / "parity.log",
        trusted_ca=tmp_path / "ca.pem",
        relay_socket=str(tmp_path / "hookshift" / "relay.sock"),
        stage_dns="runtime",  # the stage's name resolves nowhere: nginx -t must not resolve it
    )
    plan = make_plan(options, (1, 22, 1))
    assert plan.changes and not plan.already_applied
    apply_plan(plan, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
    upgraded = config.read_text()
    assert "hookshift-mirror.sock" not in upgraded, "the previous relay is gone"
    assert "empty_gif;  # hookshift" in upgraded, "the relay that answers first is in"
    assert upgraded.count("mirror /__hookshift_mirror;") == 1
    assert make_plan(options, (1, 22, 1)).already_applied, "a second apply changes nothing"

    remove_marked(config, nginx_bin=nginx_bin, backup_dir=tmp_path / "bk", prefix=tmp_path)
    assert config.read_text() == _fill("nginx.conf.in", tmp_path)
