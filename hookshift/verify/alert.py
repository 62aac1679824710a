"""When to wake someone: once per incident, not once per update.

Two incidents: the mirror is losing callbacks (missing_in_queue grows) and the pull has
stopped (its heartbeat is older than allowed). An incident fires when it starts and stays
quiet while it lasts; losses end when missing_in_queue has not grown for `rearm_s` (so a
stage that fails for an hour pages once, not at every update), a stopped pull ends when the
heartbeat is fresh again. The memory is a small JSON file, so a restarted watcher does not
page again for an incident it already reported.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from hookshift.verify.follow import read_json_state
from hookshift.verify.private import write_private
from hookshift.verify.retention import Finding, human

DEFAULT_REARM_S = 600
ALERT_TIMEOUT_S = 30


@dataclass
class AlertMemory:
    missing: int = 0  # missing_in_queue at the last update
    losing: bool = False  # a loss incident is open
    grew_at: float | None = None  # when missing_in_queue last grew
    pull_stopped: bool = False


@dataclass(frozen=True)
class Alert:
    kind: str  # "missing_in_queue" | "pull_stopped" | "recovered"
    message: str


def evaluate(
    memory: AlertMemory,
    now: float,
    missing: int,
    pull_finding: Finding | None,
    rearm_s: float = DEFAULT_REARM_S,
) -> tuple[AlertMemory, list[Alert]]:
    """The next memory and the alerts to send for one update (pure)."""
    m = AlertMemory(**asdict(memory))
    alerts: list[Alert] = []
    if missing > m.missing:
        if not m.losing:
            alerts.append(
                Alert(
                    "missing_in_queue",
                    f"the mirror is losing callbacks: missing_in_queue rose from {m.missing} "
                    f"to {missing}",
                )
            )
        m.losing = True
        m.grew_at = now
    elif m.losing and m.grew_at is not None and now - m.grew_at >= rearm_s:
        m.losing = False
        alerts.append(
            Alert(
                "recovered",
                f"missing_in_queue has not grown for {human(rearm_s)} (now {missing})",
            )
        )
    m.missing = missing
    if pull_finding is not None and not m.pull_stopped:
        m.pull_stopped = True
        alerts.append(Alert("pull_stopped", pull_finding.what))
    elif pull_finding is None and m.pull_stopped:
        m.pull_stopped = False
        alerts.append(Alert("recovered", "the pull is running again"))
    return m, alerts


def load(path: Path) -> AlertMemory:
    return read_json_state(path, AlertMemory) or AlertMemory()


def save(path: Path, memory: AlertMemory) -> None:
    write_private(path, json.dumps(asdict(memory)) + "\n")


def run_alert(command: str, alert: Alert) -> str | None:
    """Run the user's --alert-cmd (a shell command line) with the alert in its environment
    (HOOKSHIFT_ALERT, HOOKSHIFT_ALERT_MESSAGE); returns a problem to report, or None."""
    env = {**os.environ, "HOOKSHIFT_ALERT": alert.kind, "HOOKSHIFT_ALERT_MESSAGE": alert.message}
    try:
        done = subprocess.run(
            command, shell=True, env=env, timeout=ALERT_TIMEOUT_S, capture_output=True
        )
    except subprocess.TimeoutExpired:
        return f"--alert-cmd did not finish within {ALERT_TIMEOUT_S} s"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"--alert-cmd exited {done.returncode}: {tail[0]}"
    return None
