"""A drill's report: report.json (everything recorded, and the verdicts) and report.html,
a page with the verdicts and a timeline drawn as inline SVG (requests per second, errors,
the leader the majority followed, and the faults), with no plotting library.
"""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path

WIDTH, PLOT_HEIGHT, BAND_HEIGHT, WRITES_HEIGHT = 900, 220, 22, 16
LEFT, RIGHT, TOP = 50, 20, 20
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948")


def write_report(report: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    html_path = directory / "report.html"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    html_path.write_text(render_html(report))
    return json_path, html_path


def render_html(report: dict) -> str:
    passed = report.get("passed")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.get("started_at", 0)))
    rows = "\n".join(_verdict_row(v) for v in report.get("verdicts", []))
    events = "\n".join(
        f"<li>{e['at']:.1f} s: {escape(e['kind'])} <b>{escape(e['fault'])}</b> "
        f"{escape(_details(e))}</li>"
        for e in report.get("events", [])
    )
    outcome = "PASSED" if passed else "FAILED"
    colour = "#2e7d32" if passed else "#c62828"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Dispa drill {escape(report.get("drill", ""))}: {outcome}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 960px; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
.pass {{ color: #2e7d32; font-weight: bold; }} .fail {{ color: #c62828; font-weight: bold; }}
small {{ color: #666; }}
</style></head><body>
<h1>Drill <code>{escape(report.get("drill", ""))}</code>:
<span style="color:{colour}">{outcome}</span></h1>
<p>{escape(report.get("description", ""))}<br>
<small>started {started}, {report.get("duration", 0):.0f} s of workload;
final revision {report.get("final_revision")}</small></p>
<h2>Timeline</h2>
{render_timeline_svg(report.get("timeline", []), report.get("events", []), report.get("writes"))}
<h2>Verdicts</h2>
<table><tr><th>check</th><th>verdict</th><th>what was measured</th></tr>
{rows}
</table>
<h2>Faults</h2>
<ul>{events}</ul>
<p><small>All numbers, the write history and the leader samples are in report.json
beside this page.</small></p>
</body></html>
"""


def _verdict_row(verdict: dict) -> str:
    mark = (
        '<span class="pass">pass</span>' if verdict["passed"] else '<span class="fail">FAIL</span>'
    )
    problems = "".join(f"<br><small>{escape(p)}</small>" for p in verdict.get("problems", []))
    return (
        f"<tr><td>{escape(verdict['name'])}</td><td>{mark}</td>"
        f"<td>{escape(verdict['summary'])}{problems}</td></tr>"
    )


def _details(event: dict) -> str:
    skip = {"at", "kind", "fault", "statistics", "toxics"}
    return ", ".join(f"{k} {v}" for k, v in event.items() if k not in skip)


def render_timeline_svg(
    timeline: list[dict], events: list[dict], writes: list[dict] | None = None
) -> str:
    """Requests per second through the edges (ok in green, failed in red bars), a band
    coloured by the leader the majority followed, a row with each config write (a dot
    where it was acknowledged, a cross where it failed or stayed unknown), and a marker
    per fault injected (red) and healed (green)."""
    seconds = max(len(timeline), 1)
    plot_width = WIDTH - LEFT - RIGHT
    peak = max([1, *(p["ok"] + p["failed"] for p in timeline)]) * 1.15
    band_top = TOP + PLOT_HEIGHT + 8
    writes_top = band_top + BAND_HEIGHT + 6
    axis_y = writes_top + WRITES_HEIGHT + 14
    height = axis_y + 26

    def x(second: float) -> float:
        return LEFT + plot_width * min(max(second, 0), seconds) / seconds

    def y(value: float) -> float:
        return TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="drill timeline" '
        'font-family="sans-serif">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{PLOT_HEIGHT}" '
        'fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{LEFT - 6}" y="{TOP - 6}" font-size="11" text-anchor="end">req/s</text>',
    ]
    top_tick = peak / 1.15
    for value in (0, top_tick / 2, top_tick):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{value:.0f}</text>"
        )
    step = max(1, seconds // 10)
    for second in range(0, seconds + 1, step):
        parts.append(
            f'<text x="{x(second):.1f}" y="{axis_y}" font-size="11" text-anchor="middle">'
            f"{second}s</text>"
        )
    parts += _fault_shading(events, x)
    bar = plot_width / seconds
    for point in timeline:
        if point["failed"]:
            top = y(point["failed"])
            parts.append(
                f'<rect x="{x(point["second"]):.1f}" y="{top:.1f}" width="{max(1.0, bar - 1):.1f}" '
                f'height="{TOP + PLOT_HEIGHT - top:.1f}" fill="#c62828"><title>second '
                f"{point['second']}: {point['failed']} failed</title></rect>"
            )
    if timeline:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(p['second'] + 0.5):.1f},{y(p['ok']):.1f}"
            for i, p in enumerate(timeline)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="#2e7d32" stroke-width="2"/>')
    parts += _leader_band(timeline, x, band_top)
    parts += _write_marks(writes or [], x, writes_top)
    for event in events:
        colour = "#c62828" if event["kind"] == "inject" else "#2e7d32"
        parts.append(
            f'<line x1="{x(event["at"]):.1f}" x2="{x(event["at"]):.1f}" y1="{TOP}" '
            f'y2="{writes_top + WRITES_HEIGHT}" stroke="{colour}" stroke-dasharray="4 3"/>'
            f'<text x="{x(event["at"]) + 3:.1f}" y="{TOP + 12}" font-size="11" fill="{colour}">'
            f"{escape(event['kind'])}: {escape(event['fault'])}</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{height - 4}" font-size="11"><tspan fill="#2e7d32">'
        '\u2014 edge requests ok per second</tspan>  <tspan fill="#c62828">\u25a0 failed '
        "per second</tspan>  band: the majority's leader (grey: none)  "
        "writes: \u25cf acknowledged, \u00d7 failed or unknown</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _fault_shading(events: list[dict], x) -> list[str]:
    parts, injected = [], {}
    for event in events:
        if event["kind"] == "inject":
            injected[event["fault"]] = event["at"]
        elif event["fault"] in injected:
            start = injected.pop(event["fault"])
            width = max(1.0, x(event["at"]) - x(start))
            parts.append(
                f'<rect x="{x(start):.1f}" y="{TOP}" width="{width:.1f}" '
                f'height="{PLOT_HEIGHT}" fill="#c62828" fill-opacity="0.07"/>'
            )
    return parts


def _leader_band(timeline: list[dict], x, top: float) -> list[str]:
    """One rectangle per run of seconds with the same leader, named where it starts."""
    colours: dict[str, str] = {}
    segments: list[list] = []  # [leader, first second, last second]
    for point in timeline:
        leader = point.get("leader")
        if segments and segments[-1][0] == leader:
            segments[-1][2] = point["second"]
        else:
            segments.append([leader, point["second"], point["second"]])
    parts = []
    for leader, first, last in segments:
        if leader is None:
            fill = "#bbb"
        else:
            fill = colours.setdefault(leader, PALETTE[len(colours) % len(PALETTE)])
        width = max(1.0, x(last + 1) - x(first))
        parts.append(
            f'<rect x="{x(first):.1f}" y="{top:.1f}" width="{width:.1f}" '
            f'height="{BAND_HEIGHT}" fill="{fill}"><title>{first}-{last + 1} s: leader '
            f"{escape(str(leader))}</title></rect>"
        )
        if leader is not None and width > 8 * len(leader):
            parts.append(
                f'<text x="{x(first) + 4:.1f}" y="{top + 15:.1f}" font-size="11" '
                f'fill="white">{escape(leader)}</text>'
            )
    return parts


def _write_marks(writes: list[dict], x, top: float) -> list[str]:
    middle = top + WRITES_HEIGHT / 2
    parts = [
        f'<text x="{LEFT - 6}" y="{middle + 4:.1f}" font-size="11" text-anchor="end">writes</text>'
    ]
    for write in writes:
        at = x(write["complete"])
        tip = escape(
            f"{write['op_id']} to {write['core']}: {write['result']} "
            f"{write.get('revision') or ''} {write.get('detail') or ''}".strip()
        )
        if write["result"] == "ok":
            parts.append(
                f'<circle cx="{at:.1f}" cy="{middle:.1f}" r="2.5" fill="#4e79a7">'
                f"<title>{tip}</title></circle>"
            )
        else:
            parts.append(
                f'<text x="{at:.1f}" y="{middle + 4:.1f}" font-size="12" text-anchor="middle" '
                f'fill="#c62828">\u00d7<title>{tip}</title></text>'
            )
    return parts


def summary_table(results: list[dict]) -> str:
    """One line per drill run: name, outcome, and the headline numbers."""
    lines = [
        f"{'drill':<20} {'result':<7} {'availability':>12} {'new leader':>10} "
        f"{'next commit':>11} {'writes ok':>9}  failed checks"
    ]
    for result in results:
        numbers = {v["name"]: v["numbers"] for v in result.get("verdicts", [])}
        availability = numbers.get("edge availability", {}).get("ratio")
        failover = numbers.get("failover", {})
        election = failover.get("seconds_to_new_leader")
        commit = failover.get("seconds_to_next_commit")
        writes = numbers.get("history linearizable", {}).get("ok")
        failed = [v["name"] for v in result.get("verdicts", []) if not v["passed"]]
        if result.get("error"):
            failed = [result["error"]]
        lines.append(
            f"{result['drill']:<20} {'pass' if result.get('passed') else 'FAIL':<7} "
            f"{_fmt(availability, '{:.3%}'):>12} {_fmt(election, '{:.2f} s'):>10} "
            f"{_fmt(commit, '{:.2f} s'):>11} {_fmt(writes, '{}'):>9}  {', '.join(failed) or '-'}"
        )
    return "\n".join(lines)


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)
