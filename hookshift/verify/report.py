"""Rendering a ParityReport: text (a table on a TTY), JSON, Markdown and one self-contained HTML
file with an inline SVG timeline. Pure functions from the report to a string.
"""

from __future__ import annotations

import html
import json
import unicodedata
from pathlib import Path
from typing import Any

from hookshift.errors import InputError
from hookshift.verify.bodydiff import BodyDiff, diff_bodies, shorten
from hookshift.verify.parity import CLASSES, ParityReport, bucket_label
from hookshift.verify.private import write_private

FORMATS = ("text", "json", "md", "html")

# what each class means, in the words a reader of the report needs
CLASS_HELP = {
    "matched": "in both, same body",
    "missing_in_queue": (
        "nginx passed it to the app, the queue never got it: the mirror path lost it"
    ),
    "missing_in_app": "the queue has it, the app did not accept it",
    "duplicates_app": "extra copies on the app side (vendor retries)",
    "duplicates_queue": "extra messages on the queue side (retries, at-least-once)",
    "mismatched": "same key, different body after canonical JSON",
    "body_not_logged": "the parity log has no body (nginx kept it on disk): not compared",
    "in_flight": "missing in the queue but within the grace period: not yet lost",
    "not_mirrored": "nginx answered itself (no upstream): the mirror never ran",
    "app_rejected": "the app answered non-2xx; still mirrored (no copy: missing_in_queue)",
    "replayed": "reached the queue only through `hookshift verify heal`",
}
BAD = {"missing_in_queue", "mismatched"}
_STATUS_NOTE = {
    "rejected": " (the app answered non-2xx)",
    "not_mirrored": " (nginx answered itself)",
}


def render(report: ParityReport, fmt: str, *, tty: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    return render_text(report, tty=tty)


def _count_rows(report: ParityReport) -> list[tuple[str, int, str]]:
    c = report.counts
    rows = [("app (accepted)", c["app"], "records the app accepted (2xx)")]
    rows.append(("queue", c["queue"], "distinct messages"))
    rows.append(("compared", c["compared"], "keys on both sides, bodies compared"))
    rows += [(name, c[name], _class_help(name, c)) for name in CLASSES]
    rows.append(("malformed", c["malformed"], "records that could not be read"))
    by_rid = c.get("by_request_id_app", 0) + c.get("by_request_id_queue", 0)
    if by_rid:
        rows.append(("by_request_id", by_rid, "records without the key, matched by request id"))
    if c["unkeyed_app"] or c["unkeyed_queue"]:
        rows.append(
            (
                "unkeyed",
                c["unkeyed_app"] + c["unkeyed_queue"],
                "records with neither the key nor a request id: not compared",
            )
        )
    return rows


def _class_help(name: str, counts: dict[str, int]) -> str:
    rejected = counts.get("missing_in_queue_rejected", 0)
    if name == "missing_in_queue" and rejected:
        return f"{CLASS_HELP[name]} ({rejected} of them the app rejected)"
    return CLASS_HELP[name]


LAG_LABEL = "lag (SentTimestamp - nginx time)"


def _lag(report: ParityReport) -> str:
    lag = report.lag_ms
    if lag.get("p50") is None:
        return "n/a"
    return f"p50 {lag['p50']} ms, p99 {lag['p99']} ms, max {lag['max']} ms"


def _window(report: ParityReport) -> str:
    w = report.window
    since = w.get("since") or w.get("first_seen")
    until = w.get("until") or w.get("end")
    grace = f"(grace {seconds(w.get('grace_s'))} s)"
    if w.get("first_seen") is None and not w.get("since") and not w.get("until"):
        read = f", the queue read at {w['end']}" if w.get("end") else ""
        return f"no record has a time{read} {grace}"
    return f"{since or 'the first record'} .. {until or 'the last record'} {grace}"


def seconds(value: object) -> str:
    """A number of seconds as people write it, whether it came as an int or a float: ``0``,
    ``30``, ``2.5``, ``1209600`` (the command line gives floats, Python callers often ints;
    ``:g`` would write a fortnight as 1.2096e+06)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _per_bucket(report: ParityReport) -> str:
    """The timeline's bucket as the reports name it: "per 1 s", "per 15 min"."""
    return f"per {bucket_label(int(report.timeline.get('bucket_s', 60)))}"


def _timeline_summary(report: ParityReport) -> str:
    """The timeline in one line, for the formats that draw none: its bucket, its extent and where
    the losses are."""
    buckets = report.timeline.get("buckets") or []
    if not buckets:
        return f"{_per_bucket(report)}, no timed records"
    text = (
        f"{_per_bucket(report)}, {len(buckets)} bucket(s) from {buckets[0]['start']}"
        f" to {buckets[-1]['start']}"
    )
    lossy = [b for b in buckets if b["missing_in_queue"]]
    if lossy:
        text += f"; missing_in_queue in {len(lossy)} of them, the first at {lossy[0]['start']}"
    return text


def render_text(report: ParityReport, *, tty: bool = False) -> str:
    """Plain lines when piped; an aligned, coloured table on a terminal."""
    import click

    verdict = report.verdict.upper()
    if tty:
        verdict = click.style(verdict, fg="green" if report.passed else "red", bold=True)
    lines = [
        f"parity: {verdict} - {report.reason}",
        f"key: {report.key}   window: {_window(report)}",
        f"app: {report.sources['app']}   queue: {report.sources['queue']}",
        f"{LAG_LABEL}: {_lag(report)}",
        f"timeline: {_timeline_summary(report)}",
        "",
    ]
    rows = _count_rows(report)
    width = max(len(r[0]) for r in rows)
    num_w = max(len(f"{r[1]:,}") for r in rows)
    if tty:
        lines.append(f"{'class'.ljust(width)}  {'count'.rjust(num_w)}  meaning")
        lines.append(f"{'-' * width}  {'-' * num_w}  {'-' * 40}")
    for name, value, meaning in rows:
        text = f"{name.ljust(width)}  {f'{value:,}'.rjust(num_w)}  {meaning}"
        if tty and name in BAD and value:
            text = click.style(text, fg="red")
        lines.append(text if tty else f"{name}: {value}")
    for name in (
        "missing_in_queue",
        "mismatched",
        "body_not_logged",
        "missing_in_app",
        "not_mirrored",
    ):
        samples = report.samples.get(name) or []
        if samples:
            lines.append("")
            lines.append(f"{name} (first {len(samples)}):")
            for s in samples:
                note = _STATUS_NOTE.get(s.get("app_status") or "", "")
                lines.append(
                    f"  {s['key']}  app {s['app_time'] or '-'}  queue {s['queue_time'] or '-'}"
                    f"{note}"
                )
                if name == "mismatched":
                    lines.append(f"    app:   {s['app_body']}")
                    lines.append(f"    queue: {s['queue_body']}")
                    if s.get("app_body") is not None and s.get("queue_body") is not None:
                        diff = diff_bodies(str(s["app_body"]), str(s["queue_body"]))
                        lines.append(f"    {first_difference(diff)}")
    if report.malformed_examples:
        lines.append("")
        lines.append("malformed (first few):")
        lines += [f"  {m}" for m in report.malformed_examples]
    for w in report.warnings:
        lines.append(f"note: {w}")
    return "\n".join(lines) + "\n"


def first_difference(diff: BodyDiff) -> str:
    """Where two bodies shown part ways, in bytes as `cmp` counts them (and in characters)."""
    if diff.first_byte is None:
        return (
            "the text shown is the same on both sides: the bodies differ in what it leaves out "
            "(past its end, or digits masked as a phone number)"
        )
    return f"first difference at byte {diff.first_byte:,} (character {diff.first_char:,})"


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: ParityReport) -> str:
    out = [
        f"## Parity: **{report.verdict.upper()}**",
        "",
        f"{report.reason}",
        "",
        f"- key: `{report.key}`",
        f"- window: {_window(report)}",
        f"- app: `{report.sources['app']}`, queue: `{report.sources['queue']}`",
        f"- {LAG_LABEL}: {_lag(report)}",
        f"- timeline: {_timeline_summary(report)}",
        "",
        "| class | count | meaning |",
        "|---|---:|---|",
    ]
    out += [f"| {n} | {v:,} | {_md_escape(m)} |" for n, v, m in _count_rows(report)]
    for name in CLASSES:
        samples = report.samples.get(name) or []
        if not samples:
            continue
        out += [
            "",
            f"### {name}",
            "",
            "| key | app time | queue time | body |",
            "|---|---|---|---|",
        ]
        for s in samples:
            body = s.get("app_body") or s.get("queue_body") or ""
            out.append(
                f"| `{_md_escape(s['key'])}` | {s['app_time'] or ''} | {s['queue_time'] or ''} "
                f"| `{_md_escape(body)}` |"
            )
    if report.malformed_examples:
        out += ["", "### malformed", ""] + [f"- `{m}`" for m in report.malformed_examples]
    if report.warnings:
        out += [""] + [f"> {w}" for w in report.warnings]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML

SVG_W, SVG_H, PAD_L, PAD_B, PAD_T = 900, 270, 50, 40, 30
APP_COLOUR, QUEUE_COLOUR, LOSS_COLOUR = "#1f77b4", "#2ca02c", "#d62728"
# the background of what only the app body has, and of what only the queue body has
DEL_COLOUR, INS_COLOUR = "#ffc0c0", "#b8f0b8"


def timeline_svg(report: ParityReport) -> str:
    """Per-bucket bars: app (blue) and queue (green) side by side; losses as red marks on top."""
    buckets = report.timeline.get("buckets", [])
    if not buckets:
        return (
            '<svg width="900" height="40" id="timeline">'
            '<text x="10" y="25">no timed records</text></svg>'
        )
    peak = max(max(b["app"], b["queue"]) for b in buckets) or 1
    plot_w = SVG_W - PAD_L - 10
    plot_h = SVG_H - PAD_B - PAD_T
    slot = plot_w / len(buckets)
    bar = max(slot * 0.4, 1.0)
    parts = [
        f'<svg id="timeline" width="{SVG_W}" '
        f'height="{SVG_H}" viewBox="0 0 {SVG_W} {SVG_H}" role="img" '
        f'aria-label="timeline of both sides, {_per_bucket(report)}">',
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{SVG_W - 10}" y2="{PAD_T + plot_h}" '
        'stroke="#888"/>',
        f'<text x="4" y="{PAD_T + 10}" font-size="11">{peak:,}</text>',
        f'<text x="4" y="{PAD_T + plot_h}" font-size="11">0</text>',
    ]
    count_free_x = 0.0
    for i, b in enumerate(buckets):
        x = PAD_L + i * slot
        for offset, value, colour, cls in (
            (0.0, b["app"], APP_COLOUR, "app"),
            (bar, b["queue"], QUEUE_COLOUR, "queue"),
        ):
            h = plot_h * value / peak
            parts.append(
                f'<rect class="bar {cls}" x="{x + offset:.1f}" y="{PAD_T + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(b['start'] or '')} {cls}: {value}</title></rect>"
            )
        lost = b["missing_in_queue"]
        if lost:
            parts.append(
                f'<rect class="loss" x="{x:.1f}" y="{PAD_T - 14}" width="{max(bar * 2, 3):.1f}" '
                f'height="10" fill="{LOSS_COLOUR}"><title>{html.escape(b["start"] or "")}: '
                f"{lost} missing in queue</title></rect>"
            )
            # with narrow bars, a count that would overprint the previous one is left to the
            # mark's tooltip
            if x >= count_free_x:
                parts.append(
                    f'<text class="loss-count" x="{x:.1f}" y="{PAD_T - 17}" font-size="10" '
                    f'fill="#222">{lost}</text>'
                )
                count_free_x = x + 6 * len(str(lost)) + 4
    first, last = buckets[0]["start"] or "", buckets[-1]["start"] or ""
    parts.append(f'<text x="{PAD_L}" y="{SVG_H - 12}" font-size="11">{html.escape(first)}</text>')
    if len(buckets) > 1:  # one bucket: its start is already under it
        parts.append(
            f'<text x="{SVG_W - 10}" y="{SVG_H - 12}" font-size="11" text-anchor="end">'
            f"{html.escape(last)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(text: str) -> str:
    """Changed text, HTML-escaped, with characters that draw nothing (line breaks, tabs, zero
    widths, odd spaces) written as escapes: a change of only those would show as no change."""
    out = []
    for c in text:
        if c != " " and unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs"):
            code = _NAMED_ESCAPES.get(c) or (
                f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
            )
            out.append(f'<span class="ctl">{code}</span>')
        else:
            out.append(html.escape(c))
    return "".join(out)


def _side_html(kind: str, text: str, tag: str) -> str:
    if kind == "same":
        return html.escape(text)
    if kind == "skipped":
        return f'<span class="skip">…{len(text):,} characters…</span>' if text else ""
    if not text:  # the other side has something here
        return f'<{tag} class="gap" title="the other body has more here"></{tag}>'
    return f"<{tag}>{_visible(text)}</{tag}>"


def diff_cells(app_body: str, queue_body: str) -> tuple[str, str]:
    """A mismatched sample's two bodies as HTML: what the app body has that the queue body lacks
    in <del>, the reverse in <ins>, long unchanged runs left out; everything escaped."""
    diff = diff_bodies(app_body, queue_body)
    pieces = shorten(diff)
    app = "".join(_side_html(p.kind, p.app, "del") for p in pieces)
    queue = "".join(_side_html(p.kind, p.queue, "ins") for p in pieces)
    where = html.escape(first_difference(diff))
    return f'<code class="diff">{app}</code><div class="at">{where}</div>', (
        f'<code class="diff">{queue}</code>'
    )


def _sample_row(name: str, sample: dict[str, Any]) -> str:
    esc = html.escape
    app, queue = sample.get("app_body"), sample.get("queue_body")
    if name == "mismatched" and app is not None and queue is not None:
        app_cell, queue_cell = diff_cells(str(app), str(queue))
    else:
        app_cell, queue_cell = (f"<code>{esc(str(body or ''))}</code>" for body in (app, queue))
    return (
        f"<tr><td><code>{esc(str(sample['key']))}</code></td>"
        f"<td>{esc(str(sample['app_time']))}</td><td>{esc(str(sample['queue_time']))}</td>"
        f"<td>{app_cell}</td><td>{queue_cell}</td></tr>"
    )


def _refresh_head(refresh_s: int | None) -> str:
    # a reload in the page itself (no script): the page stays one file that opens anywhere
    return "" if refresh_s is None else f'<meta http-equiv="refresh" content="{refresh_s}">'


def _refresh_note(report: ParityReport, refresh_s: int | None) -> str:
    if refresh_s is None:
        return ""
    return (
        f'<p id="refresh">generated {html.escape(report.generated_at)}; this page reloads itself '
        f"every {refresh_s} s. If this time stops moving, nothing is updating the report.</p>"
    )


def render_html(report: ParityReport, *, refresh_s: int | None = None) -> str:
    """One file, no network: inline CSS and SVG, no scripts. With `refresh_s`, the page reloads
    itself that often (for a report that a running watch keeps rewriting) and says so, with the
    time it was generated."""
    if refresh_s is not None:
        refresh_s = max(1, int(refresh_s))  # 0 would reload without pause
    esc = html.escape
    colour = "#2ca02c" if report.passed else LOSS_COLOUR
    rows = "".join(
        f'<tr class="{"bad" if n in BAD and v else ""}" data-class="{esc(n)}">'
        f"<td>{esc(n)}</td><td class=num>{v:,}</td><td>{esc(m)}</td></tr>"
        for n, v, m in _count_rows(report)
    )
    sample_html = []
    for name in CLASSES:
        samples = report.samples.get(name) or []
        if not samples:
            continue
        items = "".join(_sample_row(name, s) for s in samples)
        sample_html.append(
            f'<h3 id="samples-{esc(name)}">{esc(name)}</h3><table class="samples">'
            "<tr><th>key</th><th>app time</th><th>queue time</th><th>app body</th>"
            f"<th>queue body</th></tr>{items}</table>"
        )
    malformed = "".join(f"<li><code>{esc(m)}</code></li>" for m in report.malformed_examples)
    notes = "".join(f"<li>{esc(w)}</li>" for w in report.warnings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{_refresh_head(refresh_s)}
<title>hookshift parity: {esc(report.verdict)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
#verdict {{ font-size: 28px; font-weight: bold; color: {colour}; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.bad td {{ background: #fde0e0; }}
code {{ font-size: 12px; word-break: break-all; }}
del, ins {{ text-decoration: none; border-radius: 2px; }}
del {{ background: {DEL_COLOUR}; }}
ins {{ background: {INS_COLOUR}; }}
del.gap, ins.gap {{ border-left: 2px solid #d62728; }}
.ctl {{ color: #a00; font-style: italic; }}
.skip {{ color: #777; font-style: italic; }}
.at {{ color: #555; font-size: 12px; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head>
<body>
<div id="verdict">{esc(report.verdict.upper())}</div>
<p id="reason">{esc(report.reason)}</p>
{_refresh_note(report, refresh_s)}
<p>key <code>{esc(report.key)}</code> &middot; window {esc(_window(report))}
&middot; {esc(LAG_LABEL)}: {esc(_lag(report))}<br>
app <code>{esc(report.sources["app"])}</code> &middot;
queue <code>{esc(report.sources["queue"])}</code></p>
<table id="counts"><tr><th>class</th><th>count</th><th>meaning</th></tr>{rows}</table>
<h2>Timeline ({esc(_per_bucket(report))})</h2>
{timeline_svg(report)}
<div class="legend"><span style="background:{APP_COLOUR}"></span>app
<span style="background:{QUEUE_COLOUR}"></span>queue
<span style="background:{LOSS_COLOUR}"></span>missing in queue (marked above its bucket)</div>
<h2>Samples{" (phone numbers redacted)" if report.redacted else ""}</h2>
{"".join(sample_html) or "<p>none</p>"}
{f"<h2>Malformed</h2><ul>{malformed}</ul>" if malformed else ""}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<p><small>generated {esc(report.generated_at)} by hookshift verify parity
in {report.duration_s} s</small></p>
</body></html>
"""


def check_report_path(path: Path) -> None:
    """Only a regular file is replaced: the report is written beside the path and renamed over
    it, which would put a file in place of a device (``--out /dev/stdout``), a pipe or a link."""
    if (path.exists() or path.is_symlink()) and (path.is_symlink() or not path.is_file()):
        raise InputError(
            "not a regular file",
            where=f"--out {path}",
            fix="give the path of a report file, or leave out --out to write on stdout",
        )


def write_report(path: Path, text: str) -> None:
    """Write a report owner-only (its samples are callbacks), also over an older, more open one."""
    check_report_path(path)
    write_private(path, text)
