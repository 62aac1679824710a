"""Fixtures for the API Gateway side: a stage emulator on loopback TLS in front of moto's SQS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hookshift.apigw.emulator import RunningStage, StageConfig, serve
from hookshift.rehearsal.sqs import MotoServer

StageFactory = Callable[..., tuple[RunningStage, str]]


@pytest.fixture
def stage(moto: MotoServer, tmp_path: Path) -> Iterator[StageFactory]:
    """``stage(**StageConfig overrides) -> (running emulator, queue URL)``; all stopped after."""
    running: list[RunningStage] = []

    def start(
        queue_attributes: dict[str, str] | None = None, **overrides: Any
    ) -> tuple[RunningStage, str]:
        name = overrides.pop("queue_name", f"cb-{uuid.uuid4().hex[:12]}")
        queue_url = moto.create_queue(name, **(queue_attributes or {}))
        config = StageConfig(
            sqs_endpoint=moto.endpoint, queue_url=queue_url, cert_dir=tmp_path / "certs"
        )
        emulator = serve(replace(config, **overrides))
        running.append(emulator)
        return emulator, queue_url

    yield start
    for emulator in running:
        emulator.stop()


def receive_all(moto: MotoServer, queue_url: str) -> list[dict[str, Any]]:
    """Every message now in the queue (with attributes), without waiting for more."""
    client = moto.client()
    messages: list[dict[str, Any]] = []
    while True:
        batch = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            VisibilityTimeout=60,
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
