"""Parity evidence for the cut-over: does the new path (API Gateway -> SQS) get every callback
the old one (nginx -> app) gets?

- `verify.pull.pull`: copy a queue into the crash-safe archive (docs/contracts.md §3);
- `verify.parity.run_parity` -> `ParityReport`: match the app side (the nginx parity log, or
  the app's own export) against the queue side and give a verdict;
- `verify.report.render`: the report as text, JSON, Markdown or one self-contained HTML file;
- `verify.heal.heal`: re-send what the mirror lost, marked as replays, exactly once.
"""
