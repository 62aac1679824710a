"""Fixtures for the end-to-end tests: whole rehearsal stacks on real processes, always stopped.

Stacks share the session's moto server (each gets its own queue) and run the stage emulator in
a thread, so a stack costs well under a second; every process a stack starts (the app, nginx)
is stopped by pid in the fixture finalizer, whatever the test did.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hookshift.apigw.emulator import Execution
from hookshift.procs import wait_until
from hookshift.rehearsal.load import Callback, SendResult, send_callbacks
from hookshift.rehearsal.sqs import MotoServer
from hookshift.rehearsal.stack import Stack, StackOptions, start_stack

MakeStack = Callable[..., Stack]


def _make_stacks(
    factory: pytest.TempPathFactory, moto: MotoServer, nginx_bin: str
) -> tuple[MakeStack, list[Stack]]:
    stacks: list[Stack] = []

    def make(**changes: Any) -> Stack:
        options = StackOptions(
            queue_name=f"e2e-{secrets.token_hex(4)}",
            stage_mode="thread",
            nginx_bin=nginx_bin,
            **changes,
        )
        stack = start_stack(factory.mktemp("stack"), options, moto=moto)
        stacks.append(stack)
        return stack

    return make, stacks


@pytest.fixture
def make_stack(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, nginx_bin: str
) -> Iterator[MakeStack]:
    """Start stacks with `StackOptions` changes; all of them are stopped after the test."""
    make, stacks = _make_stacks(tmp_path_factory, moto, nginx_bin)
    try:
        yield make
    finally:
        for stack in stacks:
            stack.stop()


@pytest.fixture(scope="module")
def hookshift_stack(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer, nginx_bin: str
) -> Iterator[Stack]:
    """The stack as hookshift sets it up (mirror applied, recommended template); shared."""
    make, stacks = _make_stacks(tmp_path_factory, moto, nginx_bin)
    try:
        yield make()
    finally:
        for stack in stacks:
            stack.stop()


def post(stack: Stack, url: str, callbacks: list[Callback]) -> list[SendResult]:
    """POST callbacks as the vendor does (DNS names mapped to loopback, the stack's CA trusted)."""
    return send_callbacks(
        url,
        callbacks,
        rate=200,
        concurrency=4,
        verify=str(stack.ca_path),
        connect_to=stack.connect_to,
    )


def executions(stack: Stack, count: int) -> list[Execution]:
    """Wait until the stage has handled `count` requests; return its execution log."""

    def enough() -> list[Execution]:  # empty (falsy) until there are `count` of them
        e = stack.stage_executions()
        return e if len(e) >= count else []

    return wait_until(enough, f"{count} stage executions")


def queue_bodies(stack: Stack, expected: int) -> list[str]:
    """Wait for `expected` messages (or a settled queue), drain them, return their bodies."""
    stack.wait_for_queue(expected, timeout=15)
    return [str(m["Body"]) for m in stack.drain_queue()]


def error_log_line(stack: Stack, pattern: str) -> str:
    assert stack.nginx is not None
    return stack.nginx.wait_for_error(pattern, timeout=15)


def parity_records(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
