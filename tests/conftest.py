"""Fixtures shared by every area's tests.

Servers are started on free loopback ports and stopped by pid in finalizers; nothing here
reaches the internet or AWS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings

from hookshift.rehearsal.sqs import MotoServer, start_moto

REPO = Path(__file__).resolve().parents[1]

# CI runs the property tests on the same examples every time (a red CI names a bug found
# before, reproducible); a developer's run keeps exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# The fast tier (`make check`: pytest -m "not e2e") starts no process. A test that does (nginx,
# moto, a hookshift subprocess, a wheel build) is marked e2e; this guard fails one that is not,
# also when the process comes from a session fixture the test is the first to use.
_RUNNING: list[pytest.Item] = []
_REAL_POPEN = subprocess.Popen


class _GuardedPopen(_REAL_POPEN):  # type: ignore[type-arg]
    def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
        item = _RUNNING[-1] if _RUNNING else None
        if item is not None and item.get_closest_marker("e2e") is None:
            pytest.fail(f"{item.nodeid} starts a process ({args!r}) but is not marked e2e")
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = _GuardedPopen  # type: ignore[misc]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _RUNNING.append(item)
    try:
        return (yield)
    finally:
        _RUNNING.pop()


@pytest.fixture(autouse=True)
def _hookshift_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hookshift's per-config state (locks' companions, records) in a fresh directory per test,
    also for the hookshift processes a test starts."""
    monkeypatch.setenv("HOOKSHIFT_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """The real nginx binary (Debian's package, installed by `make` and `.ci/run`)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        pytest.fail("nginx is not installed: run `make system-deps` (Debian's nginx package)")
    return found


MAINLINE_ENV = "HOOKSHIFT_NGINX_MAINLINE"


@pytest.fixture(params=["debian", "mainline"])
def each_nginx(request: pytest.FixtureRequest, nginx_bin: str) -> str:
    """Each nginx binary there is: Debian's, and the mainline build HOOKSHIFT_NGINX_MAINLINE
    names (.ci/run builds nginx 1.31.5 and sets it; without it that case skips, saying so)."""
    if request.param == "debian":
        return nginx_bin
    path = os.environ.get(MAINLINE_ENV, "")
    if not path:
        pytest.skip(f"{MAINLINE_ENV} is not set (.ci/run builds nginx 1.31.5 and sets it)")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{MAINLINE_ENV}={path} is not an executable")
    return path


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto SQS server for the session; tests make their own uniquely named queues."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA bundle for proxy_ssl_trusted_certificate (nginx -t loads it)."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path
