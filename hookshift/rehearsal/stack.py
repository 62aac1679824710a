"""The whole rehearsal stack as one context manager, every part real and on loopback.

    vendor (load driver) -> nginx (sample config + hookshift's mirror) -> app (ledger)
                                   \\-- mirror --> stage emulator (HTTPS, SNI) -> SQS (moto)
    nginx's resolver and every client resolve the stage host and custom domain with the DNS here.

`start_stack(workdir, StackOptions())` starts, in order: DNS (answers the stage host and the
custom domain with 127.0.0.1), moto and the queue, the stage emulator over TLS (certificates
from a CA in ``workdir/tls``), the app, and nginx with the sample config, to which hookshift's
``mirror apply`` is applied toward the emulator's stage URL (resolver = the DNS port, trusted CA
= the emulator's CA). Each server is on a free loopback port and is stopped by pid in `stop()`,
which also runs when a start fails half-way; `with start_stack(...) as stack:` stops everything
on exceptions and Ctrl-C. (The CLI also turns SIGTERM into that path.)

Other parts reuse it: the cut-over walks it through its stages, the benchmarks point wrk at it,
the e2e tests break it the ways a hand-made mirror breaks. What they use:

* ``stack.nginx_url`` (the vendor's URL before the switch), ``stack.stage_url`` /
  ``stage_callback_url`` (``https://ID.execute-api.REGION.amazonaws.com:PORT/STAGE``),
  ``custom_domain_url`` / ``custom_domain_callback_url``, ``queue_url``, ``moto_endpoint``,
  ``dns_address`` (``127.0.0.1:PORT`` for nginx's ``resolver``), ``dns`` (set records, blackhole),
  ``ca_path`` (trust it to verify the stage), ``connect_to`` (host -> 127.0.0.1 for
  `rehearsal.load.send_callbacks`), ``app_ledger``, ``parity_log``, ``config`` (the nginx files),
  ``nginx`` (`rehearsal.nginx_server.NginxServer`: reload, error log), ``pids()``;
* ``start_app()`` / ``stop_app()`` (a deploy), ``reload_nginx()``,
  ``stage_executions()`` (API Gateway's execution log), ``queue_depth()``,
  ``wait_for_queue(n)``, ``drain_queue()``, ``sqs()`` (a boto3 client), ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hookshift import mirror
from hookshift.apigw.artifacts import ApiSpec
from hookshift.apigw.emulator import CustomDomain, Execution, RunningStage, StageConfig, serve
from hookshift.apigw.integration import TemplateOptions
from hookshift.errors import HookshiftError, OperationError
from hookshift.mirror import NO_LOG, MirrorRequest
from hookshift.private import make_dirs
from hookshift.procs import LOOPBACK, ManagedProcess, free_port
from hookshift.rehearsal.app import REQUEST_ID_HEADER, read_ledger, start_app
from hookshift.rehearsal.dns import DnsServer
from hookshift.rehearsal.nginx_server import (
    CALLBACK_PATH,
    NginxServer,
    SampleConfig,
    find_nginx,
    write_sample_config,
)
from hookshift.rehearsal.scenario import queue_depth, wait_for_depth
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer, start_moto

API_ID = "abc123defg"
DOMAIN_TARGET = f"d-xyz789abcd.execute-api.{REGION}.amazonaws.com"
CUSTOM_DOMAIN = "hooks.example.com"


@dataclass(frozen=True)
class StackOptions:
    """What to start and how. The defaults are the rehearsal: hookshift's mirror, healthy stage.

    ``mirror``: ``"hookshift"`` applies hookshift's mirror to the sample config
    (``mirror_changes``: `hookshift.mirror.MirrorRequest` fields to override, e.g.
    ``{"timeout": 1.0}``); ``"none"`` leaves the config
    as the user had it, plus the `extra_*` snippets: how a test writes a hand-made
    mirror. Snippets may name what is known only once the stack runs: ``@STAGE_HOST@``,
    ``@STAGE_PORT@``, ``@STAGE_NAME@``, ``@STAGE_URL@``, ``@DNS@``, ``@CA@``,
    ``@CALLBACK_PATH@``. ``stage``: `apigw.emulator.StageConfig` fields to override
    (``response_mode``, ``template``, ``integration_content_type``, ``deny_send``, ...);
    ``stage_mode``: the emulator in its own process (the rehearsal, benchmarks) or in a thread
    of this one (cheaper to start; tests).
    """

    queue_name: str = "bizppurio-results"
    api_id: str = API_ID
    stage_name: str = "dev"
    custom_domain: str = CUSTOM_DOMAIN
    domain_target: str = DOMAIN_TARGET
    callback_path: str = CALLBACK_PATH
    mirror: str = "hookshift"  # or "none"
    parity_log: bool = True
    request_id_header: str = REQUEST_ID_HEADER
    request_id_to_app: bool = True  # the app's ledger then carries the id the queue has
    mirror_changes: dict[str, Any] = field(default_factory=dict)  # MirrorRequest fields
    extra_http: str = ""
    extra_server: str = ""
    extra_location: str = ""
    app_delay_ms: float = 0.0
    app_fsync: bool = True
    stage: dict[str, Any] = field(default_factory=dict)  # StageConfig fields to override
    stage_mode: str = "process"  # "process": its own interpreter; "thread": inside this one
    nginx_bin: str | None = None

    @property
    def stage_host(self) -> str:
        return f"{self.api_id}.execute-api.{REGION}.amazonaws.com"


@dataclass
class Stack:
    """A running stack. Attributes are what other parts point their clients at."""

    workdir: Path
    options: StackOptions
    dns: DnsServer | None = None
    moto: MotoServer | None = None
    queue_url: str = ""
    stage: Any = None  # the stage emulator: apigw's RunningStage (thread) or EmulatorProcess
    app: ManagedProcess | None = None
    app_port: int = 0
    nginx: NginxServer | None = None
    config: SampleConfig | None = None
    _stoppers: list[Callable[[], None]] = field(default_factory=list)

    # -- addresses -------------------------------------------------------------------------

    @property
    def nginx_url(self) -> str:
        """Where the vendor posts before the switch: nginx's callback location."""
        assert self.nginx is not None
        return self.nginx.url

    @property
    def stage_port(self) -> int:
        assert self.stage is not None
        return int(self.stage.port)

    @property
    def stage_url(self) -> str:
        """The stage's invoke URL (``https://HOST:PORT/STAGE``), as the mirror targets it."""
        return f"https://{self.options.stage_host}:{self.stage_port}/{self.options.stage_name}"

    @property
    def stage_callback_url(self) -> str:
        return self.stage_url + self.options.callback_path

    @property
    def custom_domain_url(self) -> str:
        """The custom domain (base path mapped to the stage): where the vendor ends up."""
        return f"https://{self.options.custom_domain}:{self.stage_port}"

    @property
    def custom_domain_callback_url(self) -> str:
        return self.custom_domain_url + self.options.callback_path

    @property
    def moto_endpoint(self) -> str:
        assert self.moto is not None
        return self.moto.endpoint

    @property
    def dns_port(self) -> int:
        assert self.dns is not None
        return self.dns.port

    @property
    def dns_address(self) -> str:
        """``127.0.0.1:PORT``, for nginx's ``resolver``."""
        return f"{LOOPBACK}:{self.dns_port}"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the emulator's certificates (trust it to verify the stage)."""
        return Path(self.stage.ca_pem) if self.stage is not None else self.tls_dir / "ca.pem"

    @property
    def app_ledger(self) -> Path:
        return self.workdir / "app-ledger.jsonl"

    @property
    def parity_log(self) -> Path:
        """hookshift's parity log (docs/contracts.md section 1), written by nginx."""
        return self.workdir / "nginx" / "logs" / "hookshift-parity.log"

    @property
    def connect_to(self) -> dict[str, str]:
        """host -> 127.0.0.1 for clients that do not use the stack's DNS (the load driver)."""
        return {self.options.stage_host: LOOPBACK, self.options.custom_domain: LOOPBACK}

    def stage_executions(self) -> list[Execution]:
        """What the emulator did with each request (API Gateway's execution log)."""
        if isinstance(self.stage, RunningStage):
            return self.stage.executions
        path = getattr(self.stage, "executions_path", None)
        if isinstance(path, Path) and path.exists():
            lines = path.read_text("utf-8").splitlines()
            return [Execution(**json.loads(line)) for line in lines if line.strip()]
        return []

    def sqs(self) -> Any:
        """A boto3 SQS client for the stack's moto."""
        assert self.moto is not None
        return self.moto.client()

    # -- operations ------------------------------------------------------------------------

    def start_app(self) -> None:
        """Start the app (again) on its port; the ledger is appended to."""
        if self.app is not None and self.app.running():
            return
        self.app = start_app(
            self.app_port,
            self.app_ledger,
            self.workdir / "app.log",
            delay_ms=self.options.app_delay_ms,
            fsync=self.options.app_fsync,
            request_id_header=self.options.request_id_header,
        )

    def stop_app(self) -> None:
        if self.app is not None:
            self.app.stop()

    def reload_nginx(self) -> None:
        assert self.nginx is not None
        self.nginx.reload()

    def app_bodies(self) -> list[str]:
        return [r.get("body", "") for r in read_ledger(self.app_ledger)]

    def queue_depth(self) -> int:
        return queue_depth(self.sqs(), self.queue_url)

    def wait_for_queue(self, expected: int, timeout: float = 10.0) -> int:
        return wait_for_depth(self.sqs(), self.queue_url, expected, timeout=timeout)

    def drain_queue(self, archive_dir: Path | None = None) -> list[dict[str, Any]]:
        """Move every message now in the queue into an archive with hookshift's own pull
        (archived before deleted; under the workdir unless given) and return what it holds."""
        from hookshift.verify import PullOptions, pull
        from hookshift.verify.archive import iter_archive

        target = archive_dir or self.workdir / "archive" / secrets.token_hex(4)
        # the pull finds credentials the way it does on a real host; moto takes any
        os.environ.setdefault("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
        options = PullOptions(
            endpoint_url=self.moto_endpoint, region=REGION, delete=True, workers=2, wait_time_s=1
        )
        pull(self.queue_url, target, options)
        return list(iter_archive(target))

    def pids(self) -> dict[str, int]:
        """The pid of each part that runs as its own process (DNS runs in this one)."""
        parts: dict[str, Any] = {
            "moto": self.moto.process if self.moto else None,
            "apigw": getattr(self.stage, "process", None),
            "app": self.app,
            "nginx": self.nginx.process if self.nginx else None,
        }
        return {
            name: int(proc.pid)
            for name, proc in parts.items()
            if isinstance(proc, ManagedProcess) and proc.popen is not None
        }

    def stop(self) -> None:
        """Stop every part, last started first; each by pid; errors do not stop the others."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            with contextlib.suppress(Exception):
                stopper()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_stack(
    workdir: Path, options: StackOptions | None = None, *, moto: MotoServer | None = None
) -> Stack:
    """Start the whole stack under `workdir`; on any failure, stop what started and re-raise.

    `moto`: an SQS server to share (tests start one per session); the stack creates its queue
    there and leaves the server running on `stop()`. Give each sharing stack its own
    `queue_name`.
    """
    options = options or StackOptions()
    workdir = workdir.resolve()
    make_dirs(workdir)  # 0700 when made here: the app's ledger and the stage's log hold callbacks
    stack = Stack(workdir=workdir, options=options)
    try:
        _start_dns(stack)
        _start_sqs(stack, moto)
        _start_stage(stack)
        stack.app_port = free_port()
        stack.start_app()
        stack._stoppers.append(stack.stop_app)
        _start_nginx(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def _start_dns(stack: Stack) -> None:
    o = stack.options
    records = [
        f"{o.stage_host}={LOOPBACK}",
        f"{o.custom_domain}={o.domain_target}",  # CNAME, as a regional custom domain is set up
        f"{o.domain_target}={LOOPBACK}",
    ]
    stack.dns = DnsServer(records).start()
    stack._stoppers.append(stack.dns.stop)


def _start_sqs(stack: Stack, shared: MotoServer | None) -> None:
    if shared is not None:
        stack.moto = shared
    else:
        stack.moto = start_moto(stack.workdir / "moto")
        stack._stoppers.append(stack.moto.stop)
    stack.queue_url = stack.moto.create_queue(stack.options.queue_name)


def stage_config(stack: Stack) -> StageConfig:
    """The emulator's configuration: the stack's queue and names, then `options.stage`."""
    o = stack.options
    assert stack.moto is not None
    config = StageConfig(
        sqs_endpoint=stack.moto.endpoint,
        queue_url=stack.queue_url,
        api_id=o.api_id,
        region=REGION,
        stage=o.stage_name,
        resource_path=o.callback_path,
        custom_domains=(CustomDomain(o.custom_domain, ""),),
        template=TemplateOptions(request_id_header=o.request_id_header),
        # the request validator `hookshift apigw template` deploys: Content-Type required, the
        # body a JSON object, so a callback AWS would refuse is refused here too
        request_model=ApiSpec.model_schema_for(None),
        cert_dir=stack.tls_dir,
        host=LOOPBACK,
        port=free_port(),
    )
    return replace(config, **o.stage)


def _start_stage(stack: Stack) -> None:
    config = stage_config(stack)
    if stack.options.stage_mode == "thread":
        stack.stage = serve(config)
    else:
        from hookshift.apigw.process import start_emulator_process

        stack.stage = start_emulator_process(stack.workdir / "apigw", config)
    stack._stoppers.append(stack.stage.stop)


def placeholders(stack: Stack) -> dict[str, str]:
    """What ``@NAME@`` in `StackOptions.extra_*` snippets stands for (known only once started).

    ``@`` rather than ``$`` or braces, which nginx itself uses.
    """
    return {
        "@STAGE_HOST@": stack.options.stage_host,
        "@STAGE_PORT@": str(stack.stage_port),
        "@STAGE_NAME@": stack.options.stage_name,
        "@STAGE_URL@": stack.stage_url,
        "@DNS@": stack.dns_address,
        "@CA@": str(stack.ca_path),
        "@CALLBACK_PATH@": stack.options.callback_path,
    }


def fill(snippet: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        snippet = snippet.replace(name, value)
    return snippet


def _start_nginx(stack: Stack) -> None:
    o = stack.options
    values = placeholders(stack)
    stack.config = write_sample_config(
        stack.workdir / "nginx",
        app_port=stack.app_port,
        callback_path=o.callback_path,
        extra_http=fill(o.extra_http, values),
        extra_server=fill(o.extra_server, values),
        extra_location=fill(o.extra_location, values),
    )
    nginx_bin = o.nginx_bin or find_nginx()
    if o.mirror == "hookshift":
        apply_mirror(stack, nginx_bin)
    stack.nginx = NginxServer(stack.config, nginx_bin=nginx_bin).start()
    stack._stoppers.append(stack.nginx.stop)


def mirror_request(stack: Stack, nginx_bin: str) -> MirrorRequest:
    """The mirror request that points the sample config at this stack's stage."""
    assert stack.config is not None
    o = stack.options
    request = MirrorRequest(
        config=stack.config.main,
        path=o.callback_path,
        stage_url=stack.stage_url,
        resolvers=(stack.dns_address,),
        nginx_bin=nginx_bin,
        request_id_header=o.request_id_header,
        request_id_to_app=o.request_id_to_app,
        trusted_ca=stack.ca_path,
        relay_socket=str(relay_socket(stack.workdir)),
        # off: no log at all, not the default one beside nginx's own access log
        parity_log=stack.parity_log if o.parity_log else NO_LOG,
        # the stage's name is known only to the stack's DNS server: the system resolver, which
        # nginx < 1.27.3 uses for a stage it keeps connections to, does not ask it
        stage_dns="runtime",
    )
    return replace(request, **o.mirror_changes)


def relay_socket(workdir: Path) -> Path:
    """A unix socket path for the mirror's local relay, unique per stack and short enough.

    A socket path is limited to 107 bytes; deep temp dirs fall back to a name in /tmp. The
    directory is named ``hookshift*`` so that nginx creates it for its own user only.
    """
    path = workdir / "nginx" / "hookshift" / "relay.sock"
    if len(str(path)) < 95:
        return path
    return Path("/tmp") / f"hookshift-{secrets.token_hex(6)}" / "relay.sock"


def apply_mirror(stack: Stack, nginx_bin: str) -> None:
    """Apply hookshift's mirror to the stack's nginx config, as `hookshift mirror apply` does."""
    try:
        mirror.apply(
            mirror_request(stack, nginx_bin), backup_dir=stack.workdir / "nginx" / "backup"
        )
    except HookshiftError as exc:
        raise OperationError(f"hookshift mirror apply failed: {exc.line()}") from None
