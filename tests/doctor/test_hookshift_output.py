"""hookshift's own mirror, planned by `mirror.plan` and applied to a copy, passes doctor clean.

Doctor and `mirror` encode the same nginx knowledge from two sides; this is where they must
agree: every warning or error doctor raises on hookshift's output is a bug in one of them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trustme

from hookshift.doctor import Severity, diagnose_file
from hookshift.mirror.plan import MirrorOptions, make_plan
from hookshift.nginx.source import to_bytes
from tests.doctor.conftest import nginx_t, write_config
from tests.mirror.helpers import copy_case
from tests.mirror.helpers import options as corpus_options
from tests.mirror.test_corpus import CASES, Case

STAGE_URL = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/dev"

CALLBACK_SITE = """
upstream app { server 127.0.0.1:9000; }
server {
    listen 127.0.0.1:8081;
    server_name callback.example.com;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    location = /bizppurio/callback {
        proxy_pass http://app;
    }
    location / {
        return 404;
    }
}
"""


def _planned_and_applied(tmp_path: Path, version: tuple[int, int, int], **options: object) -> Path:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = write_config(tmp_path, CALLBACK_SITE)
    plan = make_plan(
        MirrorOptions(
            config=config,
            path="/bizppurio/callback",
            stage_url=STAGE_URL,
            trusted_ca=ca,
            relay_socket=str(tmp_path / "relay.sock"),
            **options,  # type: ignore[arg-type]
        ),
        version,
    )
    assert plan.changes, "the plan changes nothing"
    for change in plan.changes:
        change.path.write_text(change.new_text)
    return config


OPTION_SETS = [
    pytest.param({}, id="defaults"),
    pytest.param({"parity_log": Path("parity.log")}, id="parity log"),
    pytest.param(
        {"parity_log": Path("parity.log"), "request_id_to_app": True},
        id="parity log and request id to the app",
    ),
]


@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("version", [(1, 22, 1), (1, 27, 3)], ids=["two-hop", "upstream-resolve"])
def test_planned_mirror_has_no_warning_or_error(
    tmp_path: Path, version: tuple[int, int, int], options: dict[str, object]
) -> None:
    if "parity_log" in options:
        options = {**options, "parity_log": tmp_path / "parity.log"}
    config = _planned_and_applied(tmp_path, version, **options)
    serious = [f for f in diagnose_file(config) if f.severity >= Severity.WARNING]
    assert serious == [], "\n".join(f"{f.where} [{f.code}] {f.message}" for f in serious)


@pytest.mark.e2e
def test_planned_mirror_is_valid_for_the_real_nginx_and_would_have_been_flagged_before(
    tmp_path: Path, nginx_bin: str
) -> None:
    """The applied plan passes the real nginx -t, and doctor does see the mirror it checks
    (a mirror target with a circuit breaker), so the clean result is not an empty analysis."""
    config = _planned_and_applied(
        tmp_path,
        (1, 22, 1),
        parity_log=tmp_path / "parity.log",
        stage_dns="runtime",  # the stage's name resolves nowhere: nginx -t must not resolve it
    )
    result = nginx_t(nginx_bin, config)
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert "mirror /" in text and "backup" in text
    # remove the breaker's backup server: doctor must notice on the same output
    broken = "\n".join(line for line in text.splitlines() if " backup;" not in line)
    config.write_text(broken)
    assert "mirror-no-circuit-breaker" in {f.code for f in diagnose_file(config)}


# What `mirror plan` already warns about, as the doctor code that finds the same thing.
PLAN_WARNS = {"mirror-never-runs": "`return`"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{c.path}:{c.server_name}")
@pytest.mark.parametrize("mode", ["mirror", "forward"])
def test_each_corpus_config_gets_no_warning_the_plan_did_not_give(
    case: Case, mode: str, tmp_path: Path
) -> None:
    """Over the mirror corpus (real-style configs): doctor's warnings and errors after the
    mirror is applied are those of the original config, plus only what the plan itself warned
    about (e.g. mirroring a location that ends with `return`)."""
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = copy_case(case.name, tmp_path)
    before = Counter(f.code for f in diagnose_file(config) if f.severity >= Severity.WARNING)
    plan = make_plan(
        corpus_options(
            config, case.path, ca, server_name=case.server_name, listen=case.listen, mode=mode
        ),
        (1, 22, 1),
    )
    for change in plan.changes:
        change.path.write_bytes(to_bytes(change.new_text))
    after = diagnose_file(config)
    new = Counter(f.code for f in after if f.severity >= Severity.WARNING) - before
    unexplained = [
        f
        for f in after
        if f.code in new
        and not any(PLAN_WARNS.get(f.code, "\0") in warning for warning in plan.warnings)
    ]
    assert unexplained == [], "\n".join(f"{f.where} [{f.code}] {f.message}" for f in unexplained)


@pytest.mark.parametrize("version", [(1, 22, 1), (1, 27, 3)], ids=["two-hop", "upstream-resolve"])
def test_a_relay_whose_feeding_lines_were_taken_out_is_named_as_such(
    tmp_path: Path, version: tuple[int, int, int]
) -> None:
    """A tool wrote the site file again (Plesk, gitlab-ctl): the relay is left with nothing
    feeding it. That is what doctor says, not that the relay holds callbacks."""
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    config = copy_case("location_include", tmp_path)
    plan = make_plan(corpus_options(config, "/vendor/cb", ca), version)
    for change in plan.changes:
        if change.path.parent.name != "locations":  # the callback's file is written again
            change.path.write_text(change.new_text)
    codes = {f.code for f in diagnose_file(config)}
    assert "relay-unfed" in codes and "mirror-holds-callback" not in codes
