"""`hookshift.doctor.check` from Python: the report the command prints, and nothing printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift import doctor, mirror
from hookshift.errors import InputError
from tests.doctor.conftest import write_config, write_site
from tests.doctor.samples import protected_mirror, seed_mirror


def _offline_plan_refusal(config: Path) -> str:
    """The line `mirror plan` refuses `config` with, planned offline (no nginx, no DNS)."""
    request = mirror.MirrorRequest(
        config=config,
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
        nginx_bin="/nonexistent/nginx",
        nginx_version="1.22.1",
        dns_check=False,
    )
    with pytest.raises(InputError) as planned:
        mirror.plan(request)
    return planned.value.line()


def test_a_clean_config_gives_a_report_without_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, protected_mirror())
    report = doctor.check(config, nginx_bin="/nonexistent/nginx")
    assert report.config == config and report.info == ()
    assert not report.failed(doctor.Severity.ERROR)
    assert capsys.readouterr() == ("", "")


def test_findings_come_most_severe_first_and_decide_failed(tmp_path: Path) -> None:
    report = doctor.check(write_config(tmp_path, seed_mirror()))
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)
    assert report.failed(doctor.Severity.ERROR)
    assert "mirror-wrong-host" in {f.code for f in report.findings}


def test_a_site_file_is_checked_in_the_main_config_that_includes_it(tmp_path: Path) -> None:
    site, config = write_site(tmp_path)
    report = doctor.check(site, nginx_bin="/nonexistent/nginx")
    assert report.config == config
    note = f"{site} is a site file; working on the main config {config} that includes it"
    assert report.info == (note,)
    assert any(f.where.endswith("hooks:3") for f in report.findings)


def test_a_site_file_no_main_config_includes_is_refused_with_a_fix_that_does_not_contradict(
    tmp_path: Path,
) -> None:
    """The main config suggested does not include the site file (else it would be used): the
    fix says to pass the one that does, or to include the file there."""
    site, _ = write_site(tmp_path)
    lone = tmp_path / "some" / "dir" / "hooks"
    lone.parent.mkdir(parents=True)
    lone.write_bytes(site.read_bytes())
    with pytest.raises(InputError) as refused:
        doctor.check(lone, nginx_bin="/nonexistent/nginx")
    assert refused.value.exit_code == 2
    assert refused.value.line() == (
        f"{lone} is a site file (server blocks outside http {{}}) included by no main config "
        "(fix: pass the main config that includes it with --config (e.g. "
        "/etc/nginx/nginx.conf), or include it there)"
    )
    assert _offline_plan_refusal(lone) == refused.value.line()


def test_a_config_that_does_not_parse_raises_input_error_with_exit_code_2(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, "server {\n    listen 80\n}\n")
    with pytest.raises(InputError) as raised:
        doctor.check(config)
    assert raised.value.exit_code == 2 and str(config) in raised.value.line()


NOT_SERVING = {
    "an empty file": ("", "the config holds no directives"),
    "comments only": ("# nginx.conf\n# (to be written)\n", "the config holds no directives"),
    "events only": ("events {}\n", "the config has no http { } block: nginx serves no HTTP"),
    "a stream proxy": (
        "events {}\nstream {\n    server {\n        listen 9000;\n        proxy_pass 127.0.0.1:9;\n"
        "    }\n}\n",
        "the config has no http { } block: nginx serves no HTTP",
    ),
    "an http block without servers": (
        "events {}\nhttp {\n    access_log off;\n}\n",
        "the config has no server block inside http { }",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_SERVING))
def test_a_config_that_serves_no_http_is_refused_as_mirror_plan_refuses_it(
    case: str, tmp_path: Path
) -> None:
    """Finding nothing wrong in a file that serves no callback would read as a clean bill."""
    text, what = NOT_SERVING[case]
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    with pytest.raises(InputError) as refused:
        doctor.check(config, nginx_bin="/nonexistent/nginx")
    assert refused.value.exit_code == 2
    assert refused.value.what.startswith(what) and refused.value.where == str(config)
    assert _offline_plan_refusal(config) == refused.value.line()
