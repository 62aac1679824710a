"""A transition's bad inputs are refused before anything is written; a failed command leaves
the journal as it was; an interrupted one is settled by the next command; and what the journal
and the messages say about nginx is true."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hookshift.cutover import journal
from hookshift.cutover.settings import Settings
from hookshift.mirror.refresh import rewrite_marked_line
from tests.cutover.helpers import Cutover, force, make, nginx_t, run

CONFIG = """\
events {}
http {
    server {
        listen 127.0.0.1:8080;
        location /callback { proxy_pass http://127.0.0.1:9000; }
    }
}
"""


@pytest.fixture
def simple(tmp_path: Path) -> Path:
    """A journal at baseline on a one-file config (no nginx change needed)."""
    config = tmp_path / "nginx.conf"
    config.write_text(CONFIG, encoding="utf-8")
    state = tmp_path / "cutover.jsonl"
    done = run("cutover", "init", "--state", str(state), "--config", str(config),
               "--path", "/callback")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return state


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("nginx_bin", "said"),
    [("/nonexistent/nginx", "nginx binary not found: /nonexistent/nginx"),
     ("/bin/true", "/bin/true does not answer `-v` like nginx")],
)  # fmt: skip
def test_init_refuses_an_nginx_binary_that_is_not_there_or_not_nginx(
    tmp_path: Path, nginx_bin: str, said: str
) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(CONFIG, encoding="utf-8")
    state = tmp_path / "cutover.jsonl"
    done = run("cutover", "init", "--state", str(state), "--config", str(config),
               "--path", "/callback", "--nginx-bin", nginx_bin)  # fmt: skip
    assert done.returncode == 2
    assert said in _one_line(done.stderr) and "--nginx-bin" in done.stderr
    assert not state.exists()


@pytest.mark.e2e
def test_init_records_the_nginx_found_on_path_as_a_full_path(simple: Path) -> None:
    settings = journal.read(simple).settings
    assert settings["nginx_bin"] == shutil.which("nginx")


@pytest.mark.e2e
def test_a_header_with_null_settings_is_one_line_for_every_command(simple: Path) -> None:
    lines = simple.read_text(encoding="utf-8").splitlines(keepends=True)
    header = json.loads(lines[0])
    header["settings"] = None
    simple.write_text(json.dumps(header) + "\n" + "".join(lines[1:]), encoding="utf-8")
    for command in ("status", "advance", "rollback"):
        done = run("cutover", command, "--state", str(simple))
        assert done.returncode == 2, command
        line = _one_line(done.stderr)
        assert f"{simple}:1: not a hookshift cut-over journal: settings are null" in line


@pytest.mark.e2e
def test_an_entry_edited_to_another_stage_is_not_believed(simple: Path) -> None:
    lines = simple.read_text(encoding="utf-8").splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["to"] = "vendor-switched"
    simple.write_text(lines[0] + json.dumps(entry, ensure_ascii=False) + "\n", encoding="utf-8")
    done = run("cutover", "status", "--state", str(simple))
    assert done.returncode == 2
    # the init entry's chain covers the header too: both are named, the header's line first
    assert (
        f"{simple}:1: the header (line 1, with the settings) or the init entry (line 2) was "
        "changed after it was written"
    ) in _one_line(done.stderr)


def _journal_and_files(cut: Cutover) -> tuple[bytes, dict[str, bytes]]:
    return cut.state.read_bytes(), cut.files()


@pytest.mark.e2e
def test_rollback_with_a_missing_nginx_binary_changes_nothing(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    before = _journal_and_files(cut)
    done = run("cutover", "rollback", "--state", str(cut.state), "--nginx-bin", "/nonexistent")
    assert done.returncode == 2
    assert "nginx binary not found: /nonexistent" in _one_line(done.stderr)
    assert _journal_and_files(cut) == before


def _edit_site(cut: Cutover) -> None:
    with cut.site.open("a", encoding="utf-8") as handle:
        handle.write("# ops: reviewed\n")


@pytest.mark.e2e
def test_a_failed_adopt_edits_appends_nothing(tmp_path: Path, nginx_bin: str) -> None:
    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    _edit_site(cut)
    before = _journal_and_files(cut)
    done = run("cutover", "rollback", "--state", str(cut.state), "--adopt-edits",
               "--nginx-bin", "/nonexistent")  # fmt: skip
    assert done.returncode == 2
    assert _journal_and_files(cut) == before
    status = json.loads(run("cutover", "status", "--state", str(cut.state), "--format",
                            "json").stdout)  # fmt: skip
    assert [e["action"] for e in status["history"]] == ["init", "advance"]


@pytest.mark.e2e
def test_adopted_edits_are_recorded_with_the_rollback_that_builds_on_them(
    tmp_path: Path, nginx_bin: str
) -> None:
    cut = make(tmp_path, nginx_bin)
    original = cut.files()
    force(cut, "mirror-stage")
    _edit_site(cut)
    done = run("cutover", "rollback", "--state", str(cut.state), "--adopt-edits")
    assert done.returncode == 0, done.stderr
    current = journal.read(cut.state)
    assert [e.action for e in current.entries] == ["init", "advance", "begin", "adopt", "rollback"]
    assert current.stage == "baseline"
    assert current.entries[3].files[0].path == str(cut.site)
    assert cut.files()[str(cut.main)] == original[str(cut.main)]
    assert cut.files()[str(cut.site)] == original[str(cut.site)] + b"# ops: reviewed\n"
    assert nginx_t(cut).returncode == 0
    history = run("cutover", "status", "--state", str(cut.state)).stdout.split("history:")[1]
    assert [line.split()[2] for line in history.strip().splitlines()] == [
        "init", "advance", "adopt", "rollback"
    ]  # fmt: skip


@pytest.mark.e2e
def test_a_change_of_hookshifts_own_lines_is_adopted_without_asking(
    tmp_path: Path, nginx_bin: str
) -> None:
    """`hookshift mirror refresh` rewrites a line of the mirror's (the stage's address) while a
    mirror stage runs: that is part of the stage, not an edit of the user's, so a rollback
    goes on without --adopt-edits, records it, and gives back the user's bytes."""
    cut = make(tmp_path, nginx_bin)
    original = cut.files()
    force(cut, "mirror-stage")
    lines = cut.main.read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "fail_timeout=10s;  # hookshift" in text)
    rewrite_marked_line(
        cut.main, cut.main, line, "fail_timeout=10s", "fail_timeout=9s",
        nginx_bin=nginx_bin, backup_dir=tmp_path / "backup", reload=False,
    )  # fmt: skip
    assert "fail_timeout=9s;  # hookshift" in cut.main.read_text(encoding="utf-8")
    done = run("cutover", "rollback", "--state", str(cut.state))
    assert done.returncode == 0, done.stderr
    current = journal.read(cut.state)
    assert [e.action for e in current.entries] == ["init", "advance", "begin", "adopt", "rollback"]
    assert cut.files() == original
    force(cut, "mirror-stage")
    _edit_site(cut)  # the user's own edit is still refused
    refused = run("cutover", "rollback", "--state", str(cut.state))
    assert refused.returncode == 2 and "changed outside the cut-over" in refused.stderr


@pytest.mark.e2e
def test_a_mirror_taken_out_by_hand_is_an_outside_edit_not_the_stages(
    tmp_path: Path, nginx_bin: str
) -> None:
    """`hookshift mirror remove` run by hand mid-window leaves the user's bytes as they were,
    but no callback is copied from then on: the cut-over must not go on as if the stage ran."""
    from hookshift.mirror.remove import remove_marked

    cut = make(tmp_path, nginx_bin)
    force(cut, "mirror-stage")
    remove_marked(cut.main, nginx_bin=nginx_bin, backup_dir=tmp_path / "backup")
    refused = run("cutover", "advance", "--state", str(cut.state), "--dry-run")
    assert refused.returncode == 2 and "changed outside the cut-over" in refused.stderr


@pytest.mark.e2e
def test_decommissioned_says_what_nginx_really_has(tmp_path: Path, nginx_bin: str) -> None:
    cut = make(tmp_path, nginx_bin)
    original = cut.files()
    for stage in ("mirror-stage", "mirror-domain", "vendor-switched", "decommissioned"):
        force(cut, stage)
    assert cut.files() == original  # the user's config, which proxies the path to the app
    assert b"proxy_pass http://callback_app;" in cut.site.read_bytes()
    status = run("cutover", "status", "--state", str(cut.state))
    assert "stage: decommissioned" in status.stdout
    assert "nginx's config is the original again" in status.stdout
    assert "no longer serves" not in status.stdout


def _open_intent(state: Path, target: str = "mirror-stage") -> None:
    from hookshift.cutover import transition

    current = journal.read(state)
    settings = Settings.from_json(current.settings)
    transition.begin(current, settings, op="advance", target=target, reload=False, after=None)


@pytest.mark.e2e
def test_an_open_intent_while_its_command_runs_is_left_alone(simple: Path) -> None:
    _open_intent(simple)
    before = simple.read_bytes()
    with journal.locked(simple):
        done = run("cutover", "status", "--state", str(simple), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "a transition is running now" in done.stderr
    data = json.loads(done.stdout)
    assert data["stage"] == "baseline"
    assert data["open_transition"] == {"seq": 2, "from": "baseline", "to": "mirror-stage"}
    assert simple.read_bytes() == before


@pytest.mark.e2e
def test_an_intent_killed_before_nginx_changed_is_recorded_as_aborted(simple: Path) -> None:
    _open_intent(simple)
    done = run("cutover", "status", "--state", str(simple))
    assert done.returncode == 0, done.stderr
    assert "had not changed nginx's files: recorded as aborted" in done.stderr
    current = journal.read(simple)
    assert [e.action for e in current.entries] == ["init", "begin", "abort"]
    assert current.stage == "baseline" and current.pending is None


@pytest.mark.e2e
def test_files_edited_by_hand_after_an_interruption_are_named_until_adopted(
    simple: Path,
) -> None:
    _open_intent(simple)
    config = simple.with_name("nginx.conf")
    config.write_text(CONFIG.replace("8080", "8081"), encoding="utf-8")
    before = simple.read_bytes()
    done = run("cutover", "advance", "--state", str(simple))
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert f"{simple}:3: the interrupted advance baseline -> mirror-stage (entry #2)" in line
    assert f"edited by hand since: {config}" in line and "--adopt-edits" in line
    assert simple.read_bytes() == before
    adopted = run("cutover", "advance", "--state", str(simple), "--adopt-edits")
    assert adopted.returncode == 1  # the intent is void; the gates refuse (no stage URL)
    assert "is void: the edits are adopted" in adopted.stderr
    assert [e.action for e in journal.read(simple).entries] == ["init", "begin", "abort"]


@pytest.mark.e2e
def test_cut_over_help_and_findings_use_words_a_user_knows() -> None:
    from hookshift.cutover.diagnosis import DnsObservation, diagnose
    from tests.cutover.test_diagnosis import _obs  # the probe observations those tests use

    texts = [run("cutover", command, "--help").stdout
             for command in ("init", "advance", "rollback", "status")]  # fmt: skip
    d = diagnose(_obs(dns=DnsObservation("TIMEOUT", resolver="10.0.0.2:53"), tls=None,
                      http=None, queue=None))  # fmt: skip
    texts += [f.cause + f.fix for f in d.findings]
    for text in texts:
        for word in ("seed", "two-hop", "contracts.md", "source document", "issue "):
            assert word not in text.lower(), (word, text)


# file -> sha256 (None: absent), as an intent records them
BEFORE: dict[str, str | None] = {"/etc/nginx/nginx.conf": "b" * 64}
AFTER: dict[str, str | None] = {"/etc/nginx/nginx.conf": "a" * 64}
USER: dict[str, str | None] = {"/etc/nginx/nginx.conf": "u" * 64}
OTHER: dict[str, str | None] = {"/etc/nginx/nginx.conf": "c" * 64}


@pytest.mark.parametrize(
    ("after", "actual", "user", "applied", "expected"),
    [
        (AFTER, AFTER, USER, False, "done"),
        (AFTER, BEFORE, USER, False, "undone"),
        (AFTER, OTHER, USER, True, "part-way"),  # known "after": the engine is not asked
        (None, OTHER, USER, True, "done"),
        (None, OTHER, USER, False, "part-way"),
        (None, BEFORE, USER, True, "undone"),
        (AFTER, OTHER, OTHER, False, "edited"),
        (None, OTHER, OTHER, True, "edited"),
    ],
)
def test_an_interrupted_transition_is_classified_by_nginx_files(
    after: dict[str, str | None] | None,
    actual: dict[str, str | None],
    user: dict[str, str | None],
    applied: bool,
    expected: str,
) -> None:
    from hookshift.cutover.transition import Intent, classify

    intent = Intent(2, "advance", "baseline", "mirror-stage", BEFORE, after, USER, False)
    assert classify(intent, actual, user, lambda: applied) == expected


@pytest.mark.e2e
def test_a_mangled_intent_entry_is_one_line(simple: Path) -> None:
    current = journal.read(simple)
    entry = journal.next_entry(current, action="begin", to_stage="mirror-stage",
                               evidence={"intent": {"op": "advance", "before": None}})  # fmt: skip
    journal.append(current, entry)
    done = run("cutover", "status", "--state", str(simple))
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert f"{simple}:3: not a hookshift cut-over journal: the intent entry #2" in line
    assert "mangles a field (before)" in line


@pytest.mark.e2e
def test_an_advance_killed_after_the_engine_wrote_is_recorded_as_done(
    tmp_path: Path, nginx_bin: str
) -> None:
    """Its "after" is only known to the engine: `mirror plan` is asked whether it is applied."""
    from hookshift.cutover import nginx_ops

    cut = make(tmp_path, nginx_bin)
    _open_intent(cut.state)
    settings = cut.settings()
    nginx_ops.realize(cut.state, settings, "baseline", "mirror-stage", reload=False)
    # (killed here, before the commit)
    done = run("cutover", "status", "--state", str(cut.state), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert "had changed nginx's files: recorded as done" in done.stderr
    data = json.loads(done.stdout)
    assert data["stage"] == "mirror-stage" and data["open_transition"] is None
    last = data["history"][-1]
    assert last["action"] == "advance" and last["evidence"]["intent"] == 2
    assert {f["path"] for f in last["files"]} == {str(cut.main), str(cut.site)}
