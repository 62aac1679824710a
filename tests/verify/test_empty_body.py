"""A callback with an empty body reaches the queue as ``{}``: API Gateway's ``$input.body``
gives ``{}`` for a request without a body. nginx logs it empty; parity and watch count the
two as the same callback, not a mismatch (some vendors check a URL with an empty POST)."""

from __future__ import annotations

from pathlib import Path

from hookshift.verify.canonical import same_body
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

OPTIONS = ParityOptions(grace_s=5)


def test_an_empty_body_is_the_same_callback_as_the_braces_api_gateway_sends() -> None:
    assert same_body("", "{}")
    assert not same_body("", '{"a":1}')
    assert not same_body(" ", "{}")  # a body of one space is not empty: API Gateway keeps it


def test_parity_and_watch_match_an_empty_callback_with_its_copy(tmp_path: Path) -> None:
    bodies = {0: body(0), 1: "", 2: body(2)}
    log = write_lines(
        tmp_path / "parity.log",
        [nginx_line(rid(n), T0 + n * 1000, b) for n, b in bodies.items()],
    )
    copies = [
        message(f"m{n}", "{}" if b == "" else b, T0 + n * 1000 + 50, request_id=rid(n))
        for n, b in bodies.items()
    ]
    queue = write_messages(tmp_path / "archive" / "seg-000001.jsonl", copies)
    app, archive = f"nginx:{log}", f"jsonl:{queue}"
    report = run_parity(app, archive, OPTIONS)
    assert report.counts["mismatched"] == 0
    assert report.counts["matched"] == 3
    with Watcher(app, archive, tmp_path / "state", OPTIONS) as watcher:
        watched = watcher.update()
    assert watched.counts["mismatched"] == 0
    assert watched.counts["matched"] == 3
