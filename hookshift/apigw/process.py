"""Run the stage emulator as its own process (``hookshift apigw serve``), stopped by pid.

The rehearsal and the benchmarks start the emulator beside nginx and moto; a separate process
keeps its TLS and SQS work off the caller's interpreter and lets it be stopped like any other
part of the stack. ``start_emulator_process(workdir, config)`` turns a ``StageConfig`` into the
command line, waits for the ``ready`` line, and returns the URLs and the CA to trust.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hookshift.apigw.emulator import StageConfig
from hookshift.procs import ManagedProcess, free_port, wait_until


@dataclass
class EmulatorProcess:
    """A running ``hookshift apigw serve``; ``stop()`` ends it by pid."""

    process: ManagedProcess
    config: StageConfig
    port: int
    url: str  # https://STAGE_HOST:PORT/STAGE
    ca_pem: Path
    log_path: Path
    executions_path: Path

    @property
    def invoke_url(self) -> str:
        return self.url + "/" + self.config.resource_path.strip("/")

    def domain_url(self, name: str) -> str:
        domain = next(d for d in self.config.custom_domains if d.name.lower() == name.lower())
        base = "/" + domain.base_path.strip("/") if domain.base_path else ""
        return f"https://{domain.name}:{self.port}{base}/{self.config.resource_path.strip('/')}"

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_argv(config: StageConfig, workdir: Path) -> list[str]:
    """The ``hookshift apigw serve`` command line equivalent to ``config``."""
    cert_dir = config.cert_dir or workdir / "certs"
    argv = [
        sys.executable, "-m", "hookshift", "apigw", "serve",
        "--sqs-endpoint", config.sqs_endpoint,
        "--queue-url", config.queue_url,
        "--host", config.host,
        "--port", str(config.port),
        "--cert-dir", str(cert_dir),
        "--api-id", config.api_id,
        "--region", config.region,
        "--stage", config.stage,
        "--resource", config.resource_path,
        "--integration-content-type", config.integration_content_type,
        "--integration-responses", config.response_mode,
        "--passthrough", config.passthrough_behavior,
        "--request-id-header", config.template.request_id_header,
        "--template-variant", config.template.variant,
        "--log", str(workdir / "apigw-executions.jsonl"),
    ]  # fmt: skip
    for domain in config.custom_domains:
        if domain.base_path is None:
            argv += ["--domain-unmapped", domain.name]
        else:
            argv += ["--domain", f"{domain.name}/{domain.base_path}".rstrip("/")]
    if config.template.fifo:
        argv.append("--fifo")
    if config.template.fifo_group_id_path:
        argv += ["--fifo-group-id-path", config.template.fifo_group_id_path]
    if config.template.fifo_dedup_id_path:
        argv += ["--fifo-dedup-id-path", config.template.fifo_dedup_id_path]
    if config.template_text is not None:
        template_file = workdir / "mapping-template.vtl"
        template_file.write_text(config.template_text, encoding="utf-8")
        argv += ["--template", str(template_file)]
    if config.request_model is not None:
        model_file = workdir / "request-model.json"
        model_file.write_text(json.dumps(config.request_model), encoding="utf-8")
        argv += ["--model", str(model_file)]
    if config.deny_send:
        argv.append("--deny-send")
    if not config.require_sni:
        argv.append("--no-sni-required")
    for host, spec in config.cert_overrides:
        argv += ["--cert-names", f"{host}={','.join(spec.names)}"]
        if spec.not_after is not None:
            days = (spec.not_after.timestamp() - time.time()) / 86400
            argv += ["--cert-days", f"{host}={round(days)}"]
    return argv


def start_emulator_process(
    workdir: Path, config: StageConfig, *, timeout: float = 30.0
) -> EmulatorProcess:
    """Start ``hookshift apigw serve`` for ``config`` (port 0: a free one) and wait until ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    if config.port == 0:
        from dataclasses import replace

        config = replace(config, port=free_port(config.host))
    log_path = workdir / f"apigw-{config.port}.log"
    process = ManagedProcess(name="apigw", argv=serve_argv(config, workdir), log_path=log_path)
    ready_line: list[str] = []

    def ready_lines() -> list[str]:
        return [ln for ln in process.log_text().splitlines() if ln.startswith("ready https://")]

    def ready() -> None:
        ready_line.extend(
            wait_until(ready_lines, f"'ready' in {log_path}", timeout=timeout, process=process)
        )

    process.start(ready=ready)
    fields = ready_line[0].split()
    ca_pem = Path(next(f for f in fields if f.startswith("ca="))[3:])
    return EmulatorProcess(
        process=process,
        config=config,
        port=config.port,
        url=fields[1],
        ca_pem=ca_pem,
        log_path=log_path,
        executions_path=workdir / "apigw-executions.jsonl",
    )
