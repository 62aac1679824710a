"""The rehearsal's story: callbacks sent while the app is deployed, and where each one ended up.

`run_deploy_scenario` plays the vendor against a running stack and restarts the app part-way
(a deploy), so some callbacks fail at the app (nginx answers the vendor 502). Once hookshift's
own pull has drained the queue into an archive (the stack's `drain_queue`), `reconcile` says,
per callback key, whether the app has it, the queue has it, both, or neither. The claim the
rehearsal demonstrates: app ledger + queue together hold every callback sent, and the ones
the deploy cost the app are all in the queue.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hookshift.rehearsal.load import Callback, SendResult, make_callbacks, send_callbacks

KEY_FIELD = "CMSGID"


def body_key(body: str, key_field: str = KEY_FIELD) -> str | None:
    """The callback key in a JSON body, or None when the body is not the vendor's JSON."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError):
        return None
    value = data.get(key_field) if isinstance(data, dict) else None
    return str(value) if value is not None else None


@dataclass(frozen=True)
class Reconciliation:
    """Where each sent callback is; keys sorted, so a report is stable."""

    sent: tuple[str, ...]
    vendor_ok: tuple[str, ...]
    in_app: tuple[str, ...]
    in_queue: tuple[str, ...]
    lost_at_app: tuple[str, ...]  # sent, not in the app's ledger
    lost_at_app_in_queue: tuple[str, ...]  # ... and safe in the queue
    unaccounted: tuple[str, ...]  # in neither: a real loss
    queue_mismatched: tuple[str, ...]  # in the queue with a body that differs from what was sent
    queue_unparseable: int  # queue messages whose body is not the vendor's JSON
    queue_duplicates: int


def reconcile(
    sent: Iterable[SendResult],
    app_bodies: Iterable[str],
    queue_bodies: Iterable[str],
    key_field: str = KEY_FIELD,
) -> Reconciliation:
    """Match what was sent against the app's ledger and the queue by the callback key."""
    sent_by_key = {r.key: r for r in sent}
    app_keys = {k for k in (body_key(b, key_field) for b in app_bodies) if k is not None}
    queue_keys: dict[str, list[str]] = {}
    unparseable = 0
    for body in queue_bodies:
        key = body_key(body, key_field)
        if key is None:
            unparseable += 1
        else:
            queue_keys.setdefault(key, []).append(body)
    lost = sorted(set(sent_by_key) - app_keys)
    return Reconciliation(
        sent=tuple(sorted(sent_by_key)),
        vendor_ok=tuple(sorted(k for k, r in sent_by_key.items() if r.ok)),
        in_app=tuple(sorted(app_keys & set(sent_by_key))),
        in_queue=tuple(sorted(set(queue_keys) & set(sent_by_key))),
        lost_at_app=tuple(lost),
        lost_at_app_in_queue=tuple(k for k in lost if k in queue_keys),
        unaccounted=tuple(k for k in lost if k not in queue_keys),
        queue_mismatched=tuple(
            sorted(
                k
                for k, bodies in queue_keys.items()
                if k in sent_by_key and any(b != sent_by_key[k].body for b in bodies)
            )
        ),
        queue_unparseable=unparseable,
        queue_duplicates=sum(len(v) - 1 for v in queue_keys.values()),
    )


class SqsClient(Protocol):
    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]: ...


def queue_depth(client: SqsClient, queue_url: str) -> int:
    """Visible + in-flight messages (SQS's approximate counts; exact on moto)."""
    attrs = client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_for_depth(
    client: SqsClient, queue_url: str, expected: int, *, timeout: float = 10.0, settle: float = 0.5
) -> int:
    """Wait until the queue holds `expected` messages or stops growing for `settle` seconds.

    The mirror is asynchronous: its last copies reach SQS a little after the vendor's answer.
    """
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        depth = queue_depth(client, queue_url)
        if depth >= expected:
            return depth
        now = time.monotonic()
        if depth != last:
            last, last_change = depth, now
        elif depth > 0 and now - last_change >= settle:
            return depth
        if now > deadline:
            return depth
        time.sleep(0.1)


class DeployableStack(Protocol):
    """What the scenario needs from a stack (rehearsal.stack.Stack has it)."""

    @property
    def nginx_url(self) -> str: ...
    def stop_app(self) -> None: ...
    def start_app(self) -> None: ...


@dataclass(frozen=True)
class DeployScenario:
    """N callbacks at `rate`/s; the app goes down at callback `deploy_at` for `downtime` s."""

    count: int = 200
    rate: float = 50.0
    deploy_at: int | None = None  # default: 40% of the way
    downtime: float = 1.5
    concurrency: int = 8

    @property
    def deploy_seq(self) -> int:
        return self.deploy_at if self.deploy_at is not None else int(self.count * 0.4)


@dataclass
class ScenarioRun:
    callbacks: list[Callback]
    results: list[SendResult] = field(default_factory=list)
    deploy_started: float | None = None
    deploy_finished: float | None = None


def run_deploy_scenario(
    stack: DeployableStack,
    scenario: DeployScenario,
    *,
    run_id: str,
    record: Path | None = None,
    on_result: Callable[[SendResult], None] | None = None,
    on_deploy: Callable[[str], None] | None = None,
    send_options: Mapping[str, Any] | None = None,
) -> ScenarioRun:
    """Send the callbacks through nginx and deploy the app (stop, wait, start) on the way."""
    run = ScenarioRun(callbacks=make_callbacks(scenario.count, run_id=run_id))
    deploy_thread: threading.Thread | None = None
    triggered = threading.Event()

    def deploy() -> None:
        run.deploy_started = time.time()
        if on_deploy:
            on_deploy("stopping the app (deploy)")
        stack.stop_app()
        time.sleep(scenario.downtime)
        stack.start_app()
        run.deploy_finished = time.time()
        if on_deploy:
            on_deploy("app is back")

    def before_send(callback: Callback) -> None:
        nonlocal deploy_thread
        if callback.seq >= scenario.deploy_seq and not triggered.is_set():
            triggered.set()
            deploy_thread = threading.Thread(target=deploy, name="deploy", daemon=True)
            deploy_thread.start()

    try:
        run.results = send_callbacks(
            stack.nginx_url,
            run.callbacks,
            rate=scenario.rate,
            concurrency=scenario.concurrency,
            record=record,
            on_result=on_result,
            before_send=before_send,
            **(send_options or {}),
        )
    finally:
        if deploy_thread is not None:
            deploy_thread.join()
    return run
