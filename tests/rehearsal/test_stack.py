"""The stack's life cycle: a start that fails half-way leaves nothing running."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.errors import OperationError
from hookshift.rehearsal.sqs import MotoServer
from hookshift.rehearsal.stack import StackOptions, start_stack
from tests.rehearsal.helpers import processes_mentioning

pytestmark = pytest.mark.e2e


def test_a_failed_mirror_apply_stops_every_part_already_started(
    tmp_path: Path, moto: MotoServer, nginx_bin: str
) -> None:
    options = StackOptions(
        queue_name="stack-fail",
        nginx_bin=nginx_bin,
        stage_mode="process",
        mirror_changes={"relay_socket": str(tmp_path / "no" / "such" / "dir" / "r.sock")},
    )
    with pytest.raises(OperationError, match=r"mirror apply failed.*directory does not exist"):
        start_stack(tmp_path, options, moto=moto)
    assert processes_mentioning(str(tmp_path)) == []  # the app and the emulator are gone
    assert moto.process.running()  # a shared server is not the stack's to stop


def test_seed_style_snippets_get_the_running_stack_values(
    tmp_path: Path, moto: MotoServer, nginx_bin: str
) -> None:
    options = StackOptions(
        queue_name="stack-snippet",
        nginx_bin=nginx_bin,
        stage_mode="thread",
        mirror="none",
        extra_server="    # stage @STAGE_URL@ via @DNS@ trusting @CA@\n",
    )
    with start_stack(tmp_path, options, moto=moto) as stack:
        assert stack.config is not None
        site = stack.config.site.read_text()
        assert f"# stage {stack.stage_url} via {stack.dns_address} trusting {stack.ca_path}" in site
        assert "hookshift" not in site  # mirror="none": the config as the user had it
