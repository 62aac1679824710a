"""What a sandboxed service needs to run a program is followed to where the sandbox would hide
it: the program, the links it goes through, the interpreter on its #! line and the Python a
virtualenv was made from. A sandbox here is a directory of the test standing in for /home."""

from __future__ import annotations

from pathlib import Path

from hookshift.systemd import hidden, hidden_program


def _sandbox(tmp_path: Path) -> tuple[Path, dict[Path, str]]:
    home = tmp_path / "home"
    (home / "ops").mkdir(parents=True)
    return home, {home: "ProtectHome=yes"}


def _script(path: Path, first_line: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{first_line}\nimport hookshift\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_a_program_outside_the_hidden_directories_whose_interpreter_is_too_is_visible(
    tmp_path: Path,
) -> None:
    _, hides = _sandbox(tmp_path)
    python = _script(tmp_path / "opt" / "venv" / "bin" / "python3", "#!/bin/sh")
    program = _script(tmp_path / "opt" / "venv" / "bin" / "hookshift", f"#!{python}")
    assert hidden_program(program, hides) is None
    assert hidden_program(Path("/usr/bin/true")) is None  # not a script: nothing more to follow


def test_a_link_into_a_home_directory_is_followed(tmp_path: Path) -> None:
    home, hides = _sandbox(tmp_path)
    real = _script(home / "ops" / "venv" / "bin" / "hookshift", "#!/usr/bin/python3")
    link = tmp_path / "usr-local-bin" / "hookshift"
    link.parent.mkdir()
    link.symlink_to(real)
    found = hidden_program(link, hides)
    assert found is not None and found.top == home
    assert found.reason("them") == (
        f"it is a link to {real}, and ProtectHome=yes hides {home} from them"
    )


def test_an_interpreter_that_links_into_a_home_directory_is_named_with_its_line(
    tmp_path: Path,
) -> None:
    """A virtualenv made by a Python under a home directory (pyenv: ~/.pyenv/versions/...)
    links its interpreter there: the service's exec fails though its script is outside."""
    home, hides = _sandbox(tmp_path)
    base = _script(home / "ops" / ".pyenv" / "versions" / "3.11.7" / "bin" / "python3.11", "")
    venv_python = tmp_path / "opt" / "hookshift" / "bin" / "python3"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(base)
    program = _script(venv_python.with_name("hookshift"), f"#!{venv_python}")
    found = hidden_program(program, hides)
    assert found is not None
    assert found.reason("them") == (
        f"its #! line names {venv_python}, a link to {base}, and ProtectHome=yes hides "
        f"{home} from them"
    )


def test_a_virtualenv_that_copied_its_interpreter_is_judged_by_the_python_it_was_made_from(
    tmp_path: Path,
) -> None:
    home, hides = _sandbox(tmp_path)
    made_from = home / "ops" / ".pyenv" / "versions" / "3.11.7" / "bin"
    venv = tmp_path / "opt" / "hookshift"
    python = _script(venv / "bin" / "python3", "")  # a copy (python -m venv --copies)
    (venv / "pyvenv.cfg").write_text(f"home = {made_from}\nversion = 3.11.7\n", "utf-8")
    program = _script(venv / "bin" / "hookshift", f"#!{python}")
    found = hidden_program(program, hides)
    assert found is not None and found.path == made_from
    assert found.reason("them").startswith(
        f"its #! line names a virtualenv made from the Python in {made_from}, and "
    )


def test_an_env_line_is_left_to_the_services_path(tmp_path: Path) -> None:
    _, hides = _sandbox(tmp_path)
    program = _script(tmp_path / "opt" / "hookshift", "#!/usr/bin/env python3")
    assert hidden_program(program, hides) is None


def test_the_real_sandbox_hides_home_directories_and_gives_a_private_tmp() -> None:
    for path, top in [
        ("/home/ops/archive", "/home"),
        ("/root/state", "/root"),
        ("/run/user/1000/m.prom", "/run/user"),
        ("/tmp/archive", "/tmp"),
        ("/var/tmp/watch", "/var/tmp"),
    ]:
        found = hidden(Path(path))
        assert found is not None and found.top == Path(top), path
    for visible in ("/var/lib/hookshift/archive", "/srv/hs", "/opt/hookshift/bin/hookshift"):
        assert hidden(Path(visible)) is None, visible
    found = hidden(Path("/tmp/archive"))
    assert found is not None
    assert found.reason("them") == "PrivateTmp=yes gives them a private /tmp, emptied at every stop"
