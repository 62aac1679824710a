"""`hookshift rehearse` refuses an option out of range by its name: one line, exit 2, nothing
made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.refusals import refusal

OPTIONS = ("--count", "--rate", "--downtime")


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--count", "0", "--count: not a number of callbacks of 1 or more: 0"),
        ("--rate", "nan", "--rate: not a number of callbacks per second above 0: nan"),
        ("--rate", "0", "--rate: not a number of callbacks per second above 0: 0"),
        ("--rate", "inf", "--rate: not a number of callbacks per second above 0: inf"),
        ("--downtime", "-1", "--downtime: not a number of seconds from 0 to 3600: -1"),
        ("--downtime", "3601", "--downtime: not a number of seconds from 0 to 3600: 3601"),
        ("--downtime", "nan", "--downtime: not a number of seconds from 0 to 3600: nan"),
    ],
)
def test_the_one_option_out_of_range_is_named_and_no_other(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str, says: str
) -> None:
    err = refusal(capsys, "rehearse", "--workdir", str(tmp_path / "runs"), option, value)
    assert says in err
    assert [o for o in OPTIONS if o in err] == [option]
    assert not (tmp_path / "runs").exists()
