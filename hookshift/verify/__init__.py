"""Parity evidence for the cut-over: does the new path (API Gateway -> SQS) get every callback
the old one (nginx -> app) gets?

Use from Python (what the ``hookshift verify`` commands call; nothing printed, every failure a
`hookshift.errors.HookshiftError` with its exit code)::

    from pathlib import Path
    from hookshift import verify

    verify.pull(queue_url, Path("archive"), verify.PullOptions(delete=True))
    report = verify.parity(
        "nginx:/var/log/nginx/hookshift-parity.log*",
        "archive:archive",
        verify.ParityOptions(profile="bizppurio"),
    )
    report.passed, report.counts, report.to_dict()
    verify.heal(Path("report.json"), "https://STAGE_URL/callback", verify.HealOptions(apply=True))

- `pull` -> `PullResult`: copy a queue into the crash-safe archive (docs/contracts.md §3);
- `parity` -> `ParityReport`: match the app side (the nginx parity log, or the app's own
  export) against the queue side and give a verdict;
- `heal` -> `HealResult`: re-send what the mirror lost, marked as replays, exactly once;
- `hookshift.verify.report.render`: a report as text, JSON, Markdown or one HTML file.

The package's `pull`, `parity` and `heal` are these functions, not the modules of the same
names that hold the engines: import from those by their full name
(``from hookshift.verify.parity import PHASES``).
"""

from hookshift.verify.api import HealOptions, PullOptions, heal, parity, pull
from hookshift.verify.heal import HealResult
from hookshift.verify.parity import ParityOptions, ParityReport
from hookshift.verify.pull import NetworkLimits, PullProgress, PullResult

__all__ = [
    "HealOptions",
    "HealResult",
    "NetworkLimits",
    "ParityOptions",
    "ParityReport",
    "PullOptions",
    "PullProgress",
    "PullResult",
    "heal",
    "parity",
    "pull",
]
