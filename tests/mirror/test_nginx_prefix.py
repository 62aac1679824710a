"""`--nginx-prefix` is the directory nginx is started with (``-p``). nginx does not check it
(``nginx -t -p /typo/`` passes on a config whose paths are all absolute), so hookshift does:
every mirror command and every call of the mirror API that takes a prefix refuses one that is
not a directory in one line, exit 2, before nginx is asked anything and before a byte is
written, a killed earlier run's recovery included."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from hookshift import mirror
from hookshift.errors import InputError
from hookshift.mirror.refresh import refresh
from hookshift.mirror.state import ConfigState, Intent, IntentFile, Saved, state_root
from hookshift.nginx import binary
from tests.in_process import run_in_process
from tests.mirror.helpers import STAGE_URL

CONFIG = """events {}
http {
    server {
        listen 8080;
        location = /cb { proxy_pass http://127.0.0.1:9000; }
    }
}
"""
FIX = (
    "(fix: pass the directory nginx is started with (its -p), or leave --nginx-prefix out when "
    "nginx runs without -p)"
)


def _everything(root: Path) -> dict[Path, bytes | None]:
    """Every file and directory under `root`: a file's bytes (None for a directory)."""
    return {p: None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _nginx_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused prefix is refused before the nginx binary is looked for or run."""

    def asked(*_: object, **__: object) -> None:
        raise AssertionError("nginx was asked before the prefix was refused")

    monkeypatch.setattr(binary, "find_binary", asked)
    monkeypatch.setattr(binary, "_run", asked)


def _killed_change(config: Path, backup_dir: Path) -> bytes:
    """A change a killed run left unfinished: `config` holds its new bytes and the intent to put
    the old ones back is recorded, so the next apply or remove would write. The new bytes."""
    old, new = config.read_bytes(), config.read_bytes() + b"# changed by a killed run\n"
    backup_dir.mkdir()
    (backup_dir / "nginx.conf").write_bytes(old)
    config.write_bytes(new)
    intent = IntentFile(
        str(config.resolve()),
        str(backup_dir / "nginx.conf"),
        hashlib.sha256(old).hexdigest(),
        hashlib.sha256(new).hexdigest(),
    )
    ConfigState.of(config).save(Saved({}, Intent("change", (intent,))))
    return new


PLAN_ARGS = (
    "--path",
    "/cb",
    "--stage-url",
    STAGE_URL,
    "--no-dns-check",
    "--nginx-version",
    "1.22.1",
)


@pytest.mark.parametrize(
    "command",
    [("plan", *PLAN_ARGS), ("apply", *PLAN_ARGS, "--reload"), ("remove",), ("refresh",)],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize(
    ("kind", "problem"), [("missing", "no such directory"), ("file", "not a directory")]
)
def test_every_mirror_command_refuses_a_prefix_that_is_not_a_directory_writing_nothing(
    tmp_path: Path, config: Path, command: tuple[str, ...], kind: str, problem: str
) -> None:
    prefix = tmp_path / "ngnix"  # the typo of a prefix that exists beside it
    (tmp_path / "nginx").mkdir()
    if kind == "file":
        prefix.write_text("not a directory\n")
    pending = _killed_change(config, tmp_path / "backup")
    before, state = _everything(tmp_path), _everything(state_root())

    code, out, err = run_in_process(
        "mirror", *command, "--config", str(config), "--nginx-prefix", str(prefix)
    )

    assert code == 2 and out == ""
    assert err == f"hookshift: error: --nginx-prefix {prefix}: {problem} {FIX}\n"
    assert _everything(tmp_path) == before and _everything(state_root()) == state
    assert config.read_bytes() == pending  # not even the killed run's change was undone


@pytest.mark.parametrize(
    "command",
    [("mirror", "plan", *PLAN_ARGS), ("mirror", "apply", *PLAN_ARGS), ("mirror", "remove")],
    ids=lambda c: c[1],
)
def test_an_empty_prefix_is_refused_not_taken_as_the_current_directory(
    tmp_path: Path, config: Path, command: tuple[str, ...]
) -> None:
    before = _everything(tmp_path)
    code, out, err = run_in_process(*command, "--config", str(config), "--nginx-prefix", "")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--nginx-prefix" in err and "is empty: pass the directory nginx is started with" in err
    assert _everything(tmp_path) == before


def test_the_api_refuses_the_prefix_before_anything_in_every_call_that_takes_one(
    tmp_path: Path, config: Path
) -> None:
    typo = tmp_path / "no-such-prefix"
    pending = _killed_change(config, tmp_path / "backup")
    before, state = _everything(tmp_path), _everything(state_root())
    request = mirror.MirrorRequest(
        path="/cb", stage_url=STAGE_URL, config=config, nginx_version="1.22.1", dns_check=False
    )
    calls: dict[str, Callable[[], object]] = {
        "plan": lambda: mirror.plan(dataclasses.replace(request, nginx_prefix=typo)),
        "apply": lambda: mirror.apply(request, prefix=typo),
        "remove": lambda: mirror.remove(config, prefix=typo),
        "write_back": lambda: mirror.write_back(config, {config: CONFIG}, prefix=typo),
        "refresh": lambda: refresh(config, prefix=typo),
        "check_prefix": lambda: mirror.check_prefix(str(typo)),
    }
    for name, call in calls.items():
        with pytest.raises(InputError) as refused:
            call()
        assert refused.value.line() == f"--nginx-prefix {typo}: no such directory {FIX}", name
    assert _everything(tmp_path) == before and _everything(state_root()) == state
    assert config.read_bytes() == pending
    mirror.check_prefix(tmp_path)  # a directory is taken
    mirror.check_prefix(None)  # and so is no prefix at all
