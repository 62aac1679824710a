"""The reason for the migration, end to end: an app deploy loses callbacks, the queue has them.

A full stack as `hookshift rehearse` runs it (the stage emulator in its own process), the vendor
sending while the app is stopped and started again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookshift.rehearsal.scenario import DeployScenario, reconcile, run_deploy_scenario
from hookshift.rehearsal.sqs import MotoServer
from hookshift.rehearsal.stack import Stack, StackOptions, start_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, nginx_bin: str
) -> Iterator[Stack]:
    options = StackOptions(queue_name="e2e-deploy", nginx_bin=nginx_bin, stage_mode="process")
    running = start_stack(tmp_path_factory.mktemp("deploy"), options, moto=moto)
    try:
        yield running
    finally:
        running.stop()


def test_app_ledger_and_queue_together_hold_every_callback_sent_across_a_deploy(
    stack: Stack,
) -> None:
    scenario = DeployScenario(count=60, rate=40, deploy_at=20, downtime=0.6)
    old_app_pid = stack.pids()["app"]
    run = run_deploy_scenario(stack, scenario, run_id="deploy")
    assert stack.pids()["app"] != old_app_pid  # the app really was stopped and started
    stack.wait_for_queue(scenario.count, timeout=15)
    queue = [str(m["Body"]) for m in stack.drain_queue()]
    rec = reconcile(run.results, stack.app_bodies(), queue)

    assert len(rec.sent) == scenario.count
    assert rec.lost_at_app, "the deploy should have cost the app some callbacks"
    failed_at_vendor = set(rec.sent) - set(rec.vendor_ok)
    assert set(rec.lost_at_app) <= failed_at_vendor  # nginx told the vendor: 502
    assert rec.lost_at_app_in_queue == rec.lost_at_app
    assert rec.unaccounted == ()
    assert rec.queue_mismatched == ()


def test_every_part_of_the_stack_is_a_live_process_stopped_by_pid(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, nginx_bin: str
) -> None:
    import os

    running = start_stack(
        tmp_path_factory.mktemp("pids"),
        StackOptions(queue_name="e2e-pids", nginx_bin=nginx_bin),
        moto=moto,
    )
    pids = running.pids()
    try:
        assert {"app", "nginx", "apigw"} <= set(pids)
        for pid in pids.values():
            os.kill(pid, 0)  # alive
    finally:
        running.stop()
    for name in ("app", "nginx", "apigw"):
        with pytest.raises(ProcessLookupError):
            os.kill(pids[name], 0)
