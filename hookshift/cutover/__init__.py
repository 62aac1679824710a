"""The cut-over from nginx -> app to API Gateway -> SQS, stage by stage, as Python calls.

Stages: baseline -> mirror-stage -> mirror-domain -> vendor-switched -> decommissioned. Each
transition is gated on evidence (doctor, probes, parity, the queue's retention, the drain, the
vendor's traffic) and recorded in an append-only journal, the ``state_path``::

    from pathlib import Path
    from hookshift import cutover

    state = Path("cutover.jsonl")
    settings = cutover.Settings(
        config="/etc/nginx/nginx.conf",
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        queue="sqs:https://sqs.ap-northeast-2.amazonaws.com/123456789012/results",
    )
    cutover.init(state, settings)
    print(cutover.status(state).stage)  # baseline
    dry = cutover.advance(state, dry_run=True)  # the gates only: nothing changes
    for gate in dry.gates:
        print(gate.gate, gate.passed, gate.why)
    moved = cutover.advance(state, reload=True)  # moved.advanced once every gate passed
    back = cutover.rollback(state, reload=True)  # back.byte_identical

- `init(state_path, settings) -> InitResult`: starts the journal at baseline.
- `status(state_path) -> StatusResult`: the stage, the open transition if any, the history.
- `advance(state_path, *, overrides, reload, dry_run, adopt_edits, dedup_confirmed)
  -> AdvanceResult`: a gate that is not met is returned (``passed`` False), not raised, and
  nothing changes.
- `rollback(state_path, *, config, nginx_bin, nginx_prefix, reload, adopt_edits)
  -> RollbackResult`; ``config``, ``nginx_bin`` and ``nginx_prefix`` override the settings
  recorded at init for this run (nginx moved, or runs with another ``-p``). A rollback whose
  files differ from the stage's recorded bytes raises `NotByteIdentical`, whose ``result``
  says what it did.

Nothing is printed: pass ``notice=`` (``(level, text)``) to hear what happens as it happens;
every result keeps the notices in ``notes``. Errors are `hookshift.errors.InputError` (bad input,
exit code 2, nothing written) and `OperationError` (a step failed, exit code 1).
"""

from hookshift.cutover.api import (
    AdvanceResult,
    InitResult,
    NotByteIdentical,
    Notice,
    OpenTransition,
    RollbackResult,
    Settled,
    StatusResult,
    advance,
    init,
    rollback,
    status,
)
from hookshift.cutover.settings import Settings
from hookshift.cutover.stages import GateResult, TransitionCheck

__all__ = [
    "AdvanceResult",
    "GateResult",
    "InitResult",
    "NotByteIdentical",
    "Notice",
    "OpenTransition",
    "RollbackResult",
    "Settings",
    "Settled",
    "StatusResult",
    "TransitionCheck",
    "advance",
    "init",
    "rollback",
    "status",
]
