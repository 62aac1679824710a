"""`verify watch` equals a one-shot `verify parity` at every step, over random histories:
duplicates on both sides, the same message archived twice, bodies that differ (or only in key
order), bodies the log did not keep, keys that reach one side long before the other, records
without a time or a key, malformed lines, and windows whose edges cut through all of it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookshift.errors import InputError
from hookshift.verify.parity import COUNT_KEYS, ParityOptions, run_parity
from hookshift.verify.watch import Watcher
from tests.verify.data import T0, body, message, nginx_line, rid

COMPARED = COUNT_KEYS  # every count, missing_in_queue_rejected too
CALLBACKS = 12  # few keys, so that records of one key meet often


def _reordered(n: int) -> str:
    return json.dumps(dict(reversed(json.loads(body(n)).items())), ensure_ascii=False)


# what one record of callback n looks like; draws index these
APP_BODIES = ("same", "same", "same", "empty", "other")
UPSTREAM = ("200", "200", "200", "", "502", "502, 200")
QUEUE_BODIES = ("same", "same", "same", "reordered", "other")


def _body(n: int, variant: str) -> str:
    if variant == "empty":
        return ""
    if variant == "other":
        return body(n, result="4100")
    if variant == "reordered":
        return _reordered(n).replace(",", ", ")
    return body(n)


@st.composite
def _record(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, CALLBACKS - 1))
    shift = draw(st.sampled_from([0, 0, 300, 2_000, 40_000, 300_000]))  # a late copy
    when = T0 + n * 1000 + shift
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([b"A", b"Q"])) + b'{"cut short\n'
    if draw(st.booleans()):
        line = nginx_line(
            rid(n),
            when,
            _body(n, draw(st.sampled_from(APP_BODIES))),
            upstream_status=draw(st.sampled_from(UPSTREAM)),
        )
        return b"A" + line.encode() + b"\n"
    mid = draw(st.sampled_from([f"m{n}", f"m{n}", f"m{n}-retry"]))  # m{n} twice: archived twice
    timed = draw(st.integers(0, 10)) > 0
    keyed = draw(st.integers(0, 12)) > 0
    replay = rid(n) if draw(st.integers(0, 8)) == 0 else None
    msg = message(
        mid,
        _body(n, draw(st.sampled_from(QUEUE_BODIES))),
        when + draw(st.sampled_from([40, 900])) if timed else None,
        request_id=rid(n) if keyed else None,
        replay=replay,
    )
    return b"Q" + json.dumps(msg, ensure_ascii=False).encode() + b"\n"


def _options() -> st.SearchStrategy[ParityOptions]:
    edge = st.one_of(st.none(), st.integers(-2, CALLBACKS + 2).map(lambda s: T0 + s * 1000 + 500))
    return st.builds(
        ParityOptions,
        key=st.sampled_from(["request_id", "json:MSGID+json:RESULT"]),
        since_ms=edge,
        until_ms=edge,
        grace_s=st.sampled_from([0.0, 1.5, 30.0]),
    )


def _counts(counts: dict[str, int], passed: bool, lag: dict[str, int | None]) -> dict[str, object]:
    return {k: counts[k] for k in COMPARED} | {"passed": passed, "lag": lag}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    records=st.lists(_record(), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=3),
    options=_options(),
)
def test_watch_equals_one_shot_parity_over_random_histories(
    records: list[bytes], cuts: list[int], options: ParityOptions
) -> None:
    bounds = sorted({min(c, len(records)) for c in cuts} | {len(records)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log, segment = root / "parity.log", root / "archive" / "seg-1.jsonl"
        segment.parent.mkdir()
        log.touch()
        segment.touch()
        app, queue = f"nginx:{log}", f"archive:{segment.parent}"
        with Watcher(app, queue, root / "state", options) as watcher:
            done = 0
            for bound in bounds:
                with log.open("ab") as a, segment.open("ab") as q:
                    for record in records[done:bound]:
                        (a if record[:1] == b"A" else q).write(record[1:])
                done = bound
                state = watcher.update()
                step = f"after {bound} of {len(records)} records"
                try:
                    report = run_parity(app, queue, options)
                except InputError as exc:
                    # a side of malformed lines only is bad input to a one-shot run (there is
                    # nothing to compare); the watch counts on until records come
                    assert "could be read" in exc.what, step
                    continue
                assert _counts(state.counts, state.passed, state.lag_ms) == _counts(
                    report.counts, report.passed, report.lag_ms
                ), step
                assert watcher.report(state).timeline == report.timeline, step
