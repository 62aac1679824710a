"""SQS for the rehearsal and the tests: moto's server on a loopback port, spoken to over its
real protocol (the query and JSON protocols, as boto3 and API Gateway speak them).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port

REGION = "ap-northeast-2"
ACCOUNT_ID = "123456789012"  # moto's default account
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass
class MotoServer:
    """A running moto server; `endpoint` is what boto3's ``endpoint_url`` takes."""

    process: ManagedProcess
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client(self) -> Any:
        """A boto3 SQS client bound to this server (dummy credentials, never AWS)."""
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS)

    def create_queue(self, name: str, **attributes: str) -> str:
        """Create a queue (``name.fifo`` makes a FIFO queue) and return its URL."""
        attrs = dict(attributes)
        if name.endswith(".fifo"):
            attrs.setdefault("FifoQueue", "true")
        return str(self.client().create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    def stop(self) -> None:
        self.process.stop()


def start_moto(workdir: Path, port: int | None = None) -> MotoServer:
    """Start ``moto_server`` on a free loopback port and wait until it answers."""
    port = port or free_port()
    moto_bin = Path(sys.executable).with_name("moto_server")
    argv = [str(moto_bin)] if moto_bin.exists() else [sys.executable, "-m", "moto.server"]
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "MOTO_PORT": str(port)}
    process = ManagedProcess(
        name="moto",
        argv=[*argv, "-H", LOOPBACK, "-p", str(port)],
        log_path=workdir / "moto.log",
        env=env,
    )
    process.start(ready=lambda: wait_for_port(port, timeout=30))
    return MotoServer(process=process, port=port)
