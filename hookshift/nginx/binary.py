"""Run the real nginx: its version, ``nginx -t`` on a given main config, ``nginx -s reload``.

nginx itself is the only judge of whether a config is valid (crossplane does not know which
directives exist, which are duplicates, or whether a certificate loads), so every write is
checked with the binary. Its most severe line (``[emerg]``, ``[alert]``, ``[crit]``, ``[error]``)
is reported as nginx wrote it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError, OperationError

NGINX_TIMEOUT = 60.0


@dataclass(frozen=True)
class TestResult:
    """The outcome of ``nginx -t``: `ok`, nginx's whole output, and its first error line."""

    ok: bool
    output: str
    error: str | None

    __test__ = False  # not a pytest class


SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def locate(nginx_bin: str) -> str:
    """`nginx_bin` as given when it is a path or on PATH, else found in an sbin directory
    (cron's ``PATH=/usr/bin:/bin`` leaves out /usr/sbin, where Debian installs nginx)."""
    if os.sep in nginx_bin or shutil.which(nginx_bin):
        return nginx_bin
    for directory in SBIN_DIRS:
        candidate = os.path.join(directory, nginx_bin)
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    return nginx_bin


def _run(argv: list[str], timeout: float = NGINX_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run nginx and wait for it, at most `timeout` seconds. It runs in a session of its own,
    so that a binary that never answers is stopped with everything it started (a wrapper
    script's children would otherwise outlive it)."""
    argv = [locate(argv[0]), *argv[1:]]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise InputError(
            f"nginx binary not found: {argv[0]}", fix="pass --nginx-bin /usr/sbin/nginx"
        ) from None
    except PermissionError:
        raise InputError(
            f"nginx binary not executable: {argv[0]}", fix="check --nginx-bin"
        ) from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        command = " ".join(argv[:1] + [a for a in argv[1:] if a.startswith("-")][-1:])
        late = f"`{command}` did not finish within {timeout:g} s"
        if argv[-1] in ("-v", "-V"):  # the binary given does not say what it is
            raise InputError(
                late, fix="pass --nginx-bin PATH of nginx (e.g. /usr/sbin/nginx)"
            ) from None
        raise OperationError(
            f"{late}: nginx waits while the system resolver looks up a host that an upstream "
            "or proxy_pass names; check DNS on this host"
        ) from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


_VERSION = r"(\d+)\.(\d+)\.(\d+)"


def parse_version(text: str) -> tuple[int, int, int]:
    """``nginx version: nginx/1.22.1`` (or ``openresty/1.21.4.1``) -> (1, 22, 1)."""
    match = re.search("/" + _VERSION, text)
    if match is None:
        said = text.strip().splitlines()[0][:200] if text.strip() else "nothing"
        raise InputError(
            f"this is not nginx: `-v` printed {said!r}, not its version",
            fix="pass --nginx-bin PATH of nginx (e.g. /usr/sbin/nginx), or --nginx-version "
            "X.Y.Z to plan offline",
        )
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def version_number(text: str) -> tuple[int, int, int] | None:
    """``1.22.1`` (a version as a user writes it) -> (1, 22, 1); None when not X.Y.Z."""
    match = re.fullmatch(_VERSION, text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def nginx_version(nginx_bin: str = "nginx") -> tuple[int, int, int]:
    """The version of the nginx at `nginx_bin` (``nginx -v`` writes it to stderr)."""
    proc = _run([nginx_bin, "-v"])
    return parse_version(proc.stderr + proc.stdout)


def compiled_defaults(nginx_bin: str = "nginx") -> dict[str, str]:
    """``nginx -V``'s ``--x-path=VALUE`` options (e.g. ``http-log-path``, ``prefix``)."""
    proc = _run([nginx_bin, "-V"])
    return dict(re.findall(r"--([a-z-]+)=(\S+)", proc.stderr + proc.stdout))


# nginx's log levels, most severe first; [notice] and [info] lines (``signal process started``)
# say what nginx did, never why it failed.
_ERROR_LEVELS = ("[emerg]", "[alert]", "[crit]", "[error]", "[warn]")
_CHATTER = ("[notice]", "[info]", "[debug]", "test failed", "syntax is", "test is successful")


#: what nginx puts before each error line: its time and its pid#connection
_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: ")


def without_stamp(error: str | None) -> str:
    """nginx's error line without its time and pid, so the same refusal reads the same each
    time it is given (in a dry run and in the change, and in a test)."""
    return _STAMP.sub(r"\1 ", error or "no error line (see nginx -t)")


# how `nginx -s` says that no nginx runs with the config: its pid file is missing or empty
_NOT_RUNNING = re.compile(r'invalid PID number|\.pid" failed \(2: ')


def reload_fix(error: str | None) -> str | None:
    """What to do about a failed ``nginx -s reload``, when nginx's words tell: no nginx runs
    with this config (a reload signals the master named in the pid file), so nothing can
    reload it; None when the words say something else."""
    if error is None or not _NOT_RUNNING.search(error):
        return None
    return (
        "no nginx is running with this config (its pid file names none): start nginx (e.g. "
        "`systemctl start nginx`) and run again, or run without --reload and start it later"
    )


def find_binary(nginx_bin: str = "nginx") -> str | None:
    """The runnable path of `nginx_bin` (see `locate`), or None when there is none."""
    return shutil.which(locate(nginx_bin))


def _first_error(output: str) -> str | None:
    """The line that says why nginx failed: the most severe level present, first of its kind;
    else the first line that is not nginx's progress chatter."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for level in _ERROR_LEVELS:
        for line in lines:
            if level in line:
                return line
    return next((line for line in lines if not any(c in line for c in _CHATTER)), None)


def _base_argv(
    nginx_bin: str, config: Path, prefix: Path | None, globals_: str | None
) -> list[str]:
    argv = [nginx_bin]
    if prefix is not None:
        argv += ["-p", f"{prefix}/"]
    argv += ["-c", str(config)]
    if globals_:
        argv += ["-g", globals_]
    return argv


def test_config(
    config: Path,
    *,
    nginx_bin: str = "nginx",
    prefix: Path | None = None,
    globals_: str | None = None,
) -> TestResult:
    """Run ``nginx -t`` on the main config `config` (``-p``/``-g`` when given)."""
    proc = _run([*_base_argv(nginx_bin, config, prefix, globals_), "-t"])
    output = (proc.stderr + proc.stdout).strip()
    ok = proc.returncode == 0
    return TestResult(ok, output, None if ok else _first_error(output))


def reload(
    config: Path,
    *,
    nginx_bin: str = "nginx",
    prefix: Path | None = None,
    globals_: str | None = None,
) -> TestResult:
    """``nginx -s reload`` for the nginx running with `config` (found through its pid file)."""
    proc = _run([*_base_argv(nginx_bin, config, prefix, globals_), "-s", "reload"])
    output = (proc.stderr + proc.stdout).strip()
    ok = proc.returncode == 0
    return TestResult(ok, output, None if ok else _first_error(output))
