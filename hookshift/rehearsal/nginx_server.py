"""A real nginx for the rehearsal: a sample user config in a temp prefix, run, reloaded, read.

The sample config is what a small production setup looks like before the migration: a main
``nginx.conf`` that includes ``conf.d/*.conf``, and a site file with one server whose callback
location proxies to the app. hookshift's mirror engine is then applied to it exactly as it
would be to the user's own files. Every path in it is absolute and inside the prefix (logs, pid,
temp dirs), so ``nginx -t -c FILE`` and ``nginx -s reload -c FILE`` work without ``-p`` and
nothing touches the system's nginx (/run/nginx.pid, /var/log/nginx).

nginx runs in the foreground (``daemon off``) under `ManagedProcess`, so its master is our child
and is stopped by pid; ``error_log`` is at ``info`` so the failures of a hand-made mirror
(``no resolver defined``, SSL handshake errors) land in ``logs/error.log``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hookshift.errors import OperationError
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port, wait_until

CALLBACK_PATH = "/callback/bizppurio"
SERVER_NAME = "callbacks.example.com"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
WORKER_CONNECTIONS = 4096


def find_nginx() -> str:
    """The nginx binary: on PATH, else Debian's /usr/sbin/nginx."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise OperationError(
            "nginx is not installed (fix: make system-deps, or apt-get install nginx)"
        )
    return found


@dataclass(frozen=True)
class SampleConfig:
    """Where the sample config's files are and what it listens on."""

    prefix: Path
    main: Path
    site: Path
    port: int
    app_port: int
    callback_path: str
    server_name: str

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"


def render_main_conf(prefix: Path, *, extra_http: str = "") -> str:
    """``nginx.conf``: process-level settings in the prefix, ``http`` including ``conf.d``."""
    # As root, workers would run as "nobody" and could not enter a 0700 temp dir; a rehearsal
    # prefix lives in such dirs (pytest's, mkdtemp's), so keep the workers as the invoking user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(f"    {name}_temp_path {prefix}/tmp/{name};\n" for name in TEMP_DIRS)
    return (
        f"# hookshift rehearsal sample: a callback receiver before the migration.\n"
        f"{user}"
        f"worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log info;\n"
        f"\n"
        # room for the mirror's bounds: its relay caps the copies in flight at an eighth of
        # worker_connections, and the stage emulator (Python, SQS on moto, on the same cores as
        # the load) can take a few hundred ms per copy at a burst of 100 callbacks/s
        f"worker_rlimit_nofile 16384;\n"
        f"events {{\n"
        f"    worker_connections {WORKER_CONNECTIONS};\n"
        f"}}\n"
        f"\n"
        f"http {{\n"
        f"    default_type application/octet-stream;\n"
        f"    access_log {prefix}/logs/access.log;\n"
        f"{temp}"
        f"{extra_http}"
        f"\n"
        f"    include {prefix}/conf/conf.d/*.conf;\n"
        f"}}\n"
    )


def render_site_conf(
    config: SampleConfig, *, extra_server: str = "", extra_location: str = ""
) -> str:
    """The server that receives the vendor's callbacks and proxies them to the app.

    `extra_location` goes inside the callback location and `extra_server` at server level:
    how a test writes a hand-made mirror into the same config.
    """
    return (
        f"upstream callback_app {{\n"
        f"    server {LOOPBACK}:{config.app_port};\n"
        f"}}\n"
        f"\n"
        f"server {{\n"
        f"    listen {LOOPBACK}:{config.port};\n"
        f"    server_name {config.server_name};\n"
        f"\n"
        f"    location {config.callback_path} {{\n"
        f"        proxy_pass http://callback_app;\n"
        f"        proxy_set_header Host $host;\n"
        f"        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        f"{extra_location}"
        f"    }}\n"
        f"{extra_server}"
        f"\n"
        f"    location / {{\n"
        f"        return 404;\n"
        f"    }}\n"
        f"}}\n"
    )


def write_sample_config(
    prefix: Path,
    *,
    app_port: int,
    port: int | None = None,
    server_name: str = SERVER_NAME,
    callback_path: str = CALLBACK_PATH,
    extra_http: str = "",
    extra_server: str = "",
    extra_location: str = "",
) -> SampleConfig:
    """Write the sample config under `prefix` (conf/, logs/, tmp/) and return where it is."""
    prefix = prefix.resolve()
    config = SampleConfig(
        prefix=prefix,
        main=prefix / "conf" / "nginx.conf",
        site=prefix / "conf" / "conf.d" / "callbacks.conf",
        port=port or free_port(),
        app_port=app_port,
        callback_path=callback_path,
        server_name=server_name,
    )
    for sub in ("conf/conf.d", "logs", *(f"tmp/{name}" for name in TEMP_DIRS)):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    config.main.write_text(render_main_conf(prefix, extra_http=extra_http), encoding="utf-8")
    config.site.write_text(
        render_site_conf(config, extra_server=extra_server, extra_location=extra_location),
        encoding="utf-8",
    )
    return config


@dataclass
class NginxServer:
    """A running nginx master (foreground, our child) for one config."""

    config: SampleConfig
    nginx_bin: str = field(default_factory=find_nginx)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The callback URL the vendor posts to."""
        return f"http://{LOOPBACK}:{self.config.port}{self.config.callback_path}"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.config.port}"

    def test(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the config, as it is on disk now."""
        return subprocess.run(
            [self.nginx_bin, "-t", "-q", "-c", str(self.config.main)],
            capture_output=True,
            text=True,
            check=False,
        )

    def check(self) -> None:
        """Raise OperationError with nginx's own message when ``nginx -t`` fails."""
        result = self.test()
        if result.returncode != 0:
            raise OperationError(
                f"nginx -t failed on {self.config.main}: {(result.stderr or result.stdout).strip()}"
            )

    def start(self) -> NginxServer:
        self.check()
        self.process = ManagedProcess(
            name="nginx",
            argv=[self.nginx_bin, "-c", str(self.config.main), "-g", "daemon off;"],
            log_path=self.config.prefix / "logs" / "nginx.stderr.log",
        )
        self.process.start(ready=lambda: wait_for_port(self.config.port, timeout=15))
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "nginx not started"
        return self.process.pid

    def workers(self) -> set[int]:
        """The master's worker pids now (Linux /proc)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return set()
        return {int(pid) for pid in text.split()}

    def reload(self, timeout: float = 10.0) -> None:
        """Validate, SIGHUP the master, and wait until new workers serve and old ones are gone.

        Old workers that still finish a request are given up to 2 s; after that the new
        workers already hold the listening sockets, so the reload is effective.
        """
        self.check()
        before = self.workers()
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        settle = None
        while time.monotonic() < deadline:
            now = self.workers()
            if now - before:
                settle = settle or time.monotonic() + 2.0
                if not (now & before) or time.monotonic() > settle:
                    return
            if self.process is not None and not self.process.running():
                break
            time.sleep(0.02)
        raise OperationError(
            f"nginx did not reload within {timeout:.0f}s; see {self.config.error_log}"
        )

    def error_log(self, since: int = 0) -> str:
        """The error log's text from byte offset `since` on."""
        try:
            with self.config.error_log.open("rb") as handle:
                handle.seek(since)
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_error(self, pattern: str, *, since: int = 0, timeout: float = 10.0) -> str:
        """Block until a line matching regex `pattern` is in the error log; return that line."""
        regex = re.compile(pattern)

        def matching() -> str | None:
            return next((ln for ln in self.error_log(since).splitlines() if regex.search(ln)), None)

        found = wait_until(matching, f"{pattern!r} in {self.config.error_log}", timeout=timeout)
        assert found is not None  # wait_until returns only a truthy value
        return found

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
