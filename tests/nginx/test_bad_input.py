"""Configs that cannot be read: `mirror plan` and `doctor` say so in one line and exit 2.

Each case goes through the command line (`hookshift.cli.main`, in this process), and through
both readers (`load`: crossplane, `load_source`: the byte lexer). A FIFO and an unreadable
file are read in a forked child, so that a hang is a failure and not a stuck test run.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import select
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from hookshift.cli import main
from hookshift.errors import InputError
from hookshift.nginx.config import load
from hookshift.nginx.source import load_checked, load_source
from tests.mirror.helpers import STAGE_URL, snapshot
from tests.refusals import refusal

SERVER = (
    "server {\n    listen 80;\n    location = /callback { proxy_pass http://127.0.0.1:9000; }\n}\n"
)
RANDOM = random.Random(25).randbytes(25 * 1024)  # what `head -c 25K /dev/urandom` gives


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def _call(argv: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


def _plan_argv(config: Path) -> list[str]:
    return [
        "mirror",
        "plan",
        "--config",
        str(config),
        "--path",
        "/callback",
        "--stage-url",
        STAGE_URL,
        "--no-dns-check",
        "--nginx-version",
        "1.22.1",
    ]


def _doctor_argv(config: Path) -> list[str]:
    return ["doctor", "--config", str(config)]


COMMANDS: dict[str, Callable[[Path], list[str]]] = {"plan": _plan_argv, "doctor": _doctor_argv}
READERS: dict[str, Callable[[Path], object]] = {
    "crossplane": load,
    "lexer": load_source,
    "checked": load_checked,
}


def _assert_one_line(result: Outcome, *words: str) -> None:
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root / "nginx.conf"


def _main(http_body: str) -> str:
    return "events {}\nhttp {\n" + http_body + "}\n"


CASES: dict[str, tuple[dict[str, str | bytes], tuple[str, ...]]] = {
    # a.conf includes b.conf which includes a.conf again
    "include cycle": (
        {
            "nginx.conf": _main("    include a.conf;\n"),
            "a.conf": SERVER + "include b.conf;\n",
            "b.conf": "include a.conf;\n",
        },
        ("include cycle", "a.conf -> b.conf -> a.conf", "b.conf:1"),
    ),
    "file includes itself": (
        {"nginx.conf": _main("    include nginx.conf;\n")},
        ("include cycle", "nginx.conf:3"),
    ),
    "include of a directory": (
        {"nginx.conf": _main("    include sites;\n"), "sites/a.conf": SERVER},
        ("is a directory", "nginx.conf:3", "sites"),
    ),
    "glob that matches a directory": (
        {"nginx.conf": _main("    include sites/*;\n"), "sites/a.conf": SERVER, "sites/d/x": ""},
        ("is a directory", "nginx.conf:3"),
    ),
    "missing semicolon before a brace": (
        {"nginx.conf": _main("    server {\n        listen 80\n    }\n")},
        ("nginx.conf:", ";"),  # line 4 (no ';') or 5 (unexpected '}', as nginx says)
    ),
    "an included file saved with a byte order mark": (
        {"nginx.conf": _main("    include a.conf;\n"), "a.conf": "\ufeff" + SERVER},
        ("byte order mark", "a.conf:1", "without it"),
    ),
    "a block left open": (
        {"nginx.conf": "events {}\nhttp {\n    server {\n        location / {\n        }\n"},
        ("unexpected end of file", "nginx.conf:6"),  # where nginx -t says it
    ),
    "a comment nginx refuses as too long (a megabyte, read in linear time)": (
        {"nginx.conf": "#" + "x" * 1_000_000 + "\n" + _main("")},
        ("nginx.conf:1", "a comment of 1000001 bytes", "too long parameter"),
    ),
    "blocks nested absurdly deep": (
        {"nginx.conf": _main("if ($a) {" * 300 + "}" * 300 + "\n")},
        ("nested more than",),
    ),
    "a binary file as the main config": (
        {"nginx.conf": bytes(range(256)) * 100},
        ("nginx.conf: nginx config file is not text", "NUL bytes", "a text file"),
    ),
    "an included file of random bytes": (
        {"nginx.conf": _main("    include blob.conf;\n"), "blob.conf": RANDOM},
        ("nginx.conf:3", "included file", "blob.conf is not text", "NUL bytes"),
    ),
    "a config saved as UTF-16": (
        {"nginx.conf": _main(SERVER).encode("utf-16")},
        ("nginx.conf: nginx config file is not text", "UTF-16"),
    ),
    "an included file of control characters without a NUL": (
        {"nginx.conf": _main("    include ctl.conf;\n"), "ctl.conf": bytes(range(1, 32)) * 40},
        ("nginx.conf:3", "ctl.conf is not text", "are control characters"),
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_line_exit_2_nothing_written(
    case: str, command: str, tmp_path: Path
) -> None:
    files, words = CASES[case]
    config = _write(tmp_path, files)
    before = snapshot(tmp_path)
    result = _call(COMMANDS[command](config))
    _assert_one_line(result, *words)
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_both_readers_refuse_with_the_place(case: str, reader: str, tmp_path: Path) -> None:
    files, words = CASES[case]
    config = _write(tmp_path, files)
    with pytest.raises(InputError) as err:
        READERS[reader](config)
    assert err.value.where is not None and err.value.line().count("\n") == 0
    if case not in ("missing semicolon before a brace", "a block left open") or (
        reader != "crossplane"
    ):
        # crossplane's own wording (and line at the end of a file) differs
        assert all(w in err.value.line() for w in words if w not in ("';'",)), err.value.line()


NOT_UTF8 = b"\xff\xfe caf\xe9"


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["comment", "argument"])
def test_non_utf8_bytes_round_trip_through_plan(where: str, tmp_path: Path) -> None:
    header = (
        b"# " + NOT_UTF8 + b"\n"
        if where == "comment"
        else b'    add_header X-Note "' + NOT_UTF8 + b'";\n'
    )
    site = (
        b"server {\n    listen 80;\n"
        + header
        + b"    location = /callback { proxy_pass http://127.0.0.1:9000; }\n}\n"
    )
    config = _write(tmp_path, {"nginx.conf": _main("    include site.conf;\n"), "site.conf": site})
    result = _call([*_plan_argv(config), "--format", "json"])
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    # the plan's new text of the site keeps the undecodable bytes where they were
    from hookshift.mirror.plan import MirrorOptions, make_plan

    plan = make_plan(
        MirrorOptions(config=config, path="/callback", stage_url=STAGE_URL), (1, 22, 1)
    )
    (change,) = [c for c in plan.changes if c.path.name == "site.conf"]
    new = change.new_text.encode("utf-8", "surrogateescape")
    assert NOT_UTF8 in new
    assert change.old_text.encode("utf-8", "surrogateescape") == site
    if where == "argument":
        (directive,) = [d for d in load_checked(config).config.walk() if d[0].name == "add_header"]
        assert directive[0].args[1].encode("utf-8", "surrogateescape") == NOT_UTF8


# --- in a forked child: a FIFO must never be opened, an unreadable file must be named ---


@contextlib.contextmanager
def _world_readable_dir() -> Iterator[Path]:
    """A directory another user can read (pytest's tmp_path is private to its owner)."""
    root = Path(tempfile.mkdtemp(prefix="hookshift-bad-input-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        root.rmdir()


def _in_child(argv: list[str], uid: int | None = None, timeout: float = 60) -> Outcome:
    """Run the CLI in a forked child (as `uid` if given); a child that hangs is killed."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(out_r)
            os.close(err_r)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            with (
                os.fdopen(out_w, "w") as out,
                os.fdopen(err_w, "w") as err,
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                try:
                    main(argv)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    open_fds = {out_r, err_r}
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"hookshift {' '.join(argv[:2])} hung (killed after {timeout} s)")
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
                os.close(fd)
    _, status = os.waitpid(pid, 0)
    return Outcome(
        os.waitstatus_to_exitcode(status),
        b"".join(chunks[out_r]).decode(),
        b"".join(chunks[err_r]).decode(),
    )


@pytest.mark.e2e
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("fifo_is", ["the main config", "an included file"])
def test_a_fifo_is_refused_without_opening_it(fifo_is: str, command: str, tmp_path: Path) -> None:
    if fifo_is == "the main config":
        config = tmp_path / "nginx.conf"
        os.mkfifo(config)
        words: tuple[str, ...] = ("not a regular file", "nginx.conf")
    else:
        config = _write(tmp_path, {"nginx.conf": _main("    include site.conf;\n")})
        os.mkfifo(tmp_path / "site.conf")
        words = ("not a regular file", "nginx.conf:3", "site.conf")
    result = _in_child(COMMANDS[command](config))
    _assert_one_line(result, *words)
    assert stat.S_ISFIFO(
        os.stat(tmp_path / ("nginx.conf" if fifo_is == "the main config" else "site.conf")).st_mode
    )


@pytest.mark.e2e
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unreadable_include_is_named(command: str) -> None:
    with _world_readable_dir() as root:
        config = _write(
            root, {"nginx.conf": _main("    include site.conf;\n"), "site.conf": SERVER}
        )
        config.chmod(0o644)
        (root / "site.conf").chmod(0o000)
        # root reads anything: the child reads as nobody when the tests run as root
        uid = 65534 if os.geteuid() == 0 else None
        result = _in_child(COMMANDS[command](config), uid=uid)
        _assert_one_line(result, "Permission denied", "site.conf")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_empty_config_option_is_refused_as_empty(command: str, tmp_path: Path) -> None:
    argv = COMMANDS[command](tmp_path / "nginx.conf")
    argv[argv.index("--config") + 1] = ""
    _assert_one_line(_call(argv), "'--config': is empty")


# --- a file that is not text: refused by every command that reads a config, as nginx does ---

NOT_TEXT = {
    "bytes 0..255": bytes(range(256)) * 100,
    "random bytes": RANDOM,
    "UTF-16": _main(SERVER).encode("utf-16"),
}


def _every_command(config: Path) -> dict[str, list[str]]:
    """Each command that reads a config, with what it needs to get that far."""
    plan_args = ["--path", "/callback", "--stage-url", STAGE_URL, "--no-dns-check"]
    return {
        "mirror plan": ["mirror", "plan", "--config", str(config), *plan_args],
        "mirror apply": ["mirror", "apply", "--config", str(config), *plan_args],
        "mirror remove": ["mirror", "remove", "--config", str(config)],
        "mirror refresh": ["mirror", "refresh", "--config", str(config)],
        "doctor": ["doctor", "--config", str(config)],
    }


@pytest.mark.e2e  # nginx -t is the oracle; apply asks nginx -V
@pytest.mark.parametrize("content", sorted(NOT_TEXT))
def test_a_file_that_is_not_text_is_refused_by_every_command_in_one_line(
    content: str, tmp_path: Path, nginx_bin: str
) -> None:
    config = _write(tmp_path, {"nginx.conf": NOT_TEXT[content]})
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", f"{tmp_path}/", "-c", str(config)],
        capture_output=True,
        check=False,
    )
    assert checked.returncode != 0  # nginx refuses it too, naming some "directive" inside
    before = snapshot(tmp_path)
    for command, argv in _every_command(config).items():
        result = _call([*argv, "--nginx-bin", nginx_bin])
        _assert_one_line(result, f"{config}: nginx config file is not text")
        assert result.stdout == "", command
    assert snapshot(tmp_path) == before


@pytest.mark.e2e  # nginx -t is the oracle; apply asks nginx -V
def test_a_certificate_given_as_the_config_is_named_for_what_it_is(
    tmp_path: Path, ca: trustme.CA, nginx_bin: str
) -> None:
    """nginx reads a PEM file's base64 as a directive and says only that a ';' is missing:
    a user who passed the certificate instead of the config is told so."""
    config = tmp_path / "hooks.example.com.pem"
    config.write_bytes(ca.cert_pem.bytes())
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", f"{tmp_path}/", "-c", str(config)],
        capture_output=True,
        check=False,
    )
    assert checked.returncode != 0
    before = snapshot(tmp_path)
    for command, argv in _every_command(config).items():
        result = _call([*argv, "--nginx-bin", nginx_bin])
        _assert_one_line(
            result, f"{config}: nginx config file is a PEM file (a certificate or a key)"
        )
        assert result.stdout == "", command
    assert snapshot(tmp_path) == before


ODD_TEXT = {
    "EUC-KR comments": "# 콜백 수신 서버\n".encode("euc-kr"),
    "Latin-1 comments": "# réception des rappels\n".encode("latin-1"),
    "CRLF line endings": b"# hooks\r\n",
    "a form feed and an escape in a comment": b"# \x0c section \x1b[1m\n",
}


@pytest.mark.e2e  # nginx -t is the oracle
@pytest.mark.parametrize("odd", sorted(ODD_TEXT))
def test_text_configs_with_odd_bytes_are_still_read(
    odd: str, tmp_path: Path, nginx_bin: str
) -> None:
    head = ODD_TEXT[odd]
    text = (
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log {tmp_path}/access.log;\n{SERVER}}}\n"
    ).encode()
    if head.endswith(b"\r\n"):
        text = text.replace(b"\n", b"\r\n")
    config = _write(tmp_path, {"nginx.conf": head + text})
    checked = subprocess.run(
        [nginx_bin, "-t", "-p", f"{tmp_path}/", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    for reader in READERS.values():
        reader(config)
    relay = ["--relay-socket", str(tmp_path / "r.sock")]
    planned = _call([*_plan_argv(config), "--nginx-bin", nginx_bin, *relay])
    assert planned.code == 0, planned.stderr
    doctored = _call([*_doctor_argv(config), "--nginx-bin", nginx_bin])
    assert doctored.code in (0, 1), doctored.stderr  # findings, but read


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "events {}\n"], ids=["empty", "comments", "events only"]
)
def test_a_config_that_serves_no_http_is_the_same_one_line_for_doctor_and_plan(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(tmp_path, {"nginx.conf": text})
    offline = ["--nginx-bin", "/nonexistent/nginx"]
    said = refusal(capsys, *_doctor_argv(config), *offline)
    assert said.startswith(f"hookshift: error: {config}: the config ")
    assert refusal(capsys, *_plan_argv(config), *offline) == said
