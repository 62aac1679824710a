"""The markdown summary of a finished cut-over, written next to its journal: who moved where,
on which gates, touching how many files (the journal itself is for machines)."""

from __future__ import annotations

from pathlib import Path

from hookshift.cutover import journal


def report_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".report.md")


def render(state_path: Path, current: journal.Journal) -> str:
    """The report's text: one table row per entry, then every gate's reason."""
    lines = [
        "# hookshift cut-over report",
        "",
        f"Journal: `{state_path}`; final stage: **{current.stage}**.",
        "",
        "| # | time | action | from | to | gates | files changed |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in current.entries:
        gates = "; ".join(
            f"{g.get('gate')}: {'ok' if g.get('passed') else 'FAIL'}" for g in e.gates
        )
        lines.append(
            f"| {e.seq} | {e.time} | {e.action} | {e.from_stage or '-'} | {e.to_stage} | "
            f"{gates or '-'} | {len(e.files)} |"
        )
    lines += ["", "Gate reasons per transition:", ""]
    for e in current.entries:
        for g in e.gates:
            lines.append(f"- {e.seq} {g.get('gate')}: {g.get('why')}")
    return "\n".join(lines) + "\n"


def write(state_path: Path, current: journal.Journal) -> Path:
    out = report_path(state_path)
    out.write_text(render(state_path, current), encoding="utf-8")
    return out
