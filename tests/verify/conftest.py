"""A parity scenario with a known answer for every class (shared by the parity and report tests).

Callback n happens at T0 + n s. With key request_id:

| n  | app (parity log)       | queue                                   | class              |
|----|------------------------|-----------------------------------------|--------------------|
| 1-3| 200                    | one message, +40 ms                     | matched            |
| 4  | 200                    | two messages (vendor retry mirrored)    | matched, dup queue |
| 5  | 200                    | one message delivered twice (same id)   | matched            |
| 6  | 200                    | -                                       | missing_in_queue   |
| 7  | upstream_status ""     | -                                       | not_mirrored       |
| 8  | upstream_status 502    | one message                             | missing_in_app     |
| 9  | 200                    | body with "+" decoded to " "            | mismatched         |
| 10 | 200                    | same JSON, other key order and spacing  | matched            |
| 11 | -                      | one message                             | missing_in_app     |
| 12 | 200                    | a heal replay (hookshift_replay only)   | matched, replayed  |
| 13 | 200, at the very end   | -                                       | in_flight          |
| 14 | upstream "502, 200"    | one message                             | matched            |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

EXPECTED = {
    "app": 11,
    "queue": 12,
    "compared": 9,
    "matched": 8,
    "mismatched": 1,
    "missing_in_queue": 1,
    "missing_in_queue_rejected": 0,  # 8 was rejected and its copy is in the queue
    "in_flight": 1,
    "missing_in_app": 2,
    "not_mirrored": 1,
    "app_rejected": 1,
    "duplicates_queue": 1,
    "duplicates_app": 0,
    "replayed": 1,
    "malformed": 0,
}


@dataclass
class Scenario:
    app_glob: str
    queue_file: Path
    root: Path


def t(n: int) -> int:
    return T0 + n * 1000 if n != 13 else T0 + 200_000


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    upstream = {7: "", 8: "502", 14: "502, 200"}
    lines = {
        n: nginx_line(rid(n), t(n), body(n), upstream_status=upstream.get(n, "200"))
        for n in range(1, 15)
        if n != 11
    }
    # rotated logs: the oldest compressed, then .1, then the live file
    write_lines(tmp_path / "parity.log.2.gz", [lines[n] for n in (1, 2, 3)])
    write_lines(tmp_path / "parity.log.1", [lines[n] for n in (4, 5, 6, 7)])
    write_lines(tmp_path / "parity.log", [lines[n] for n in (8, 9, 10, 12, 13, 14)])

    def sent(n: int, mid: str, payload: str | None = None, **kw: str) -> dict[str, object]:
        return message(mid, payload or body(n), t(n) + 40, **({"request_id": rid(n)} | kw))

    reordered = json.dumps(dict(reversed(json.loads(body(10)).items())), ensure_ascii=False)
    plus_lost = body(9).replace("+", " ")
    assert plus_lost != body(9)
    messages = [
        sent(1, "m1"),
        sent(2, "m2"),
        sent(3, "m3"),
        sent(4, "m4a"),
        sent(4, "m4b"),
        sent(5, "m5"),
        sent(5, "m5"),  # the same message received twice (SQS at-least-once)
        sent(8, "m8"),
        sent(9, "m9", plus_lost),
        sent(10, "m10", reordered.replace(",", ", ")),
        sent(11, "m11"),
        message("m12", body(12), t(12) + 5000, replay=rid(12)),
        sent(14, "m14"),
    ]
    queue_file = write_messages(tmp_path / "queue" / "messages.jsonl", messages)
    return Scenario(str(tmp_path / "parity.log*"), queue_file, tmp_path)
