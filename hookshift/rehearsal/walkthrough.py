"""The cut-over, rehearsed end to end on the local stack, printed as a transcript.

``python -m hookshift.rehearsal.walkthrough`` starts the rehearsal stack (real nginx with the
sample config, the app, the stage emulator over TLS with a custom domain, DNS, SQS on moto; all
on loopback), then runs the real ``hookshift`` commands of a cut-over against it in a shell and
prints each command with its real output, as markdown. The vendor is the rehearsal's load
driver: first it calls nginx, after the switch it calls the custom domain. docs/cutover.md is
this transcript.

Short thresholds (seconds, a handful of events) keep it under two minutes; a real cut-over uses
hours and thousands (the defaults: --min-window 3600, --min-events 100, --quiet-period 86400).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from hookshift.rehearsal.load import make_callbacks, send_callbacks
from hookshift.rehearsal.sqs import REGION
from hookshift.rehearsal.stack import Stack, StackOptions, relay_socket, start_stack


def _say(text: str = "") -> None:
    print(text, flush=True)


def _shell(command: str, env: dict[str, str]) -> int:
    """Run ``command`` in bash with ``env``; print it and its output as a console block.

    stdout and stderr share one pipe, unbuffered, so the block shows them in the order a
    terminal does (what a command says it is doing comes before what it found).
    """
    done = subprocess.run(
        ["bash", "-c", command],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    _say("```console")
    _say(f"$ {command}")
    out = done.stdout.rstrip()
    if out:
        _say(out)
    if done.returncode:
        _say(f"(exit {done.returncode})")
    _say("```")
    _say()
    return done.returncode


def _vendor(stack: Stack, url: str, count: int, via: str) -> None:
    tls = url.startswith("https://")
    results = send_callbacks(
        url,
        make_callbacks(count, run_id=uuid.uuid4().hex[:8]),
        rate=20,
        verify=str(stack.ca_path) if tls else True,
        connect_to=stack.connect_to if tls else None,
    )
    ok = sum(1 for r in results if r.status == 200)
    _say(f"*The vendor (load driver) sends {count} callback(s) {via}: {ok} answered 200.*")
    _say()


def run(workdir: Path) -> None:
    options = StackOptions(mirror="none")
    with start_stack(workdir / "stack", options) as stack:
        assert stack.config is not None and stack.nginx is not None
        stack.sqs().set_queue_attributes(
            QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": "5"}
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "STATE": str(workdir / "cutover.jsonl"),
            "CONF": str(stack.config.main),
            "CALLBACK": options.callback_path,
            "STAGE_URL": stack.stage_url,
            "DOMAIN_URL": stack.custom_domain_url,
            "QUEUE": f"sqs:{stack.queue_url}",
            "SQS": stack.moto_endpoint,
            "DNS": stack.dns_address,
            "CA": str(stack.ca_path),
            "NGINX": stack.nginx.nginx_bin,
            "WORK": str(workdir),
            "RELAY": str(relay_socket(stack.workdir)),
            "PARITY_LOG": str(stack.parity_log),
        }
        _say("The rehearsal stack is up; these are its addresses (every one on loopback):")
        _say()
        _say("```console")
        for name in ("STATE", "CONF", "CALLBACK", "STAGE_URL", "DOMAIN_URL", "QUEUE", "SQS",
                     "DNS", "CA", "PARITY_LOG", "NGINX", "WORK", "RELAY"):  # fmt: skip
            _say(f"{name}={env[name]}")
        _say("```")
        _say()
        _say("### Probe the stage URL first")
        _say()
        _shell(
            "hookshift probe $STAGE_URL$CALLBACK --queue $QUEUE --endpoint-url $SQS "
            f"--region {REGION} --resolver $DNS --ca-file $CA",
            env,
        )
        _say("### Start the journal at `baseline`")
        _say()
        _shell(
            "hookshift cutover init --state $STATE --config $CONF --path $CALLBACK "
            "--stage-url $STAGE_URL --domain-url $DOMAIN_URL --queue $QUEUE "
            f"--endpoint-url $SQS --region {REGION} --parity-log $PARITY_LOG "
            "--archive $WORK/archive --nginx-bin $NGINX --resolver $DNS --stage-dns runtime "
            "--ca-file $CA "
            "--backup-dir $WORK/backup --relay-socket $RELAY "
            "--min-window 5 --min-events 10 --quiet-period 5 --parity-grace 1",
            env,
        )
        _say("### 1 -> 2: mirror to the stage URL")
        _say()
        _shell("hookshift cutover advance --state $STATE --reload", env)
        stack.nginx.reload()  # waits until the new workers serve (the engine's reload is async)
        _say("Too early: the gate wants parity over a window of this stage.")
        _say()
        _shell("hookshift cutover advance --state $STATE", env)
        _vendor(stack, stack.nginx_url, 20, "to nginx")
        stack.wait_for_queue(20)
        time.sleep(5)
        _say("### 2 -> 3: mirror to the custom domain")
        _say()
        _shell("hookshift cutover advance --state $STATE --reload", env)
        stack.nginx.reload()
        _vendor(stack, stack.nginx_url, 20, "to nginx")
        stack.wait_for_queue(20)
        time.sleep(5)
        _say("### 3 -> 4: drain, forward stragglers, switch the vendor")
        _say()
        _shell("hookshift cutover advance --state $STATE --reload", env)
        stack.nginx.reload()
        _shell("hookshift cutover advance --state $STATE", env)
        _say("The operator registers the new URL at the vendor; one straggler still reaches nginx.")
        _say()
        _vendor(stack, stack.custom_domain_callback_url, 10, "straight to the custom domain")
        _vendor(stack, stack.nginx_url, 1, "to nginx (a retry of an old one)")
        stack.wait_for_queue(11)
        _shell("hookshift cutover advance --state $STATE", env)
        time.sleep(5.5)
        _say("### 4 -> 5: decommission after the quiet period")
        _say()
        _shell("hookshift cutover advance --state $STATE --reload", env)
        stack.nginx.reload()
        _shell("hookshift cutover status --state $STATE", env)
        _say("### Rollback, one stage at a time")
        _say()
        _shell("hookshift cutover rollback --state $STATE --reload", env)
        stack.nginx.reload()
        _shell("hookshift cutover status --state $STATE --format json | head -20", env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hookshift.rehearsal.walkthrough",
        description="Rehearse a whole cut-over on the local stack; print the transcript.",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.workdir.resolve())
        return 0
    with tempfile.TemporaryDirectory(prefix="hookshift-cutover-") as tmp:
        run(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
