"""The report: JSON and HTML files, the inline SVG timeline, the summary table."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from chaos.report import render_html, render_timeline_svg, summary_table, write_report

REPORT = {
    "drill": "leader-kill",
    "description": "kill -9 the <leader>",
    "duration": 15,
    "started_at": 1795829607.0,
    "passed": False,
    "final_revision": 9,
    "verdicts": [
        {
            "name": "failover",
            "passed": True,
            "summary": "new leader core-us after 0.4 s",
            "numbers": {"seconds_to_new_leader": 0.4, "seconds_to_next_commit": 0.5},
            "problems": [],
        },
        {
            "name": "edge availability",
            "passed": False,
            "summary": "99.0% & less",
            "numbers": {"ratio": 0.99},
            "problems": ["3 x edge-eu: status 502"],
        },
    ],
    "events": [
        {"at": 4.0, "kind": "inject", "fault": "kill -9 leader", "killed": ["core-ap"]},
        {"at": 10.0, "kind": "heal", "fault": "kill -9 leader", "restarted": ["core-ap"]},
    ],
    "timeline": [
        {
            "second": s,
            "ok": 80 - (5 if s == 4 else 0),
            "failed": 5 if s == 4 else 0,
            "leader": "core-ap" if s < 4 else (None if s == 4 else "core-us"),
        }
        for s in range(15)
    ],
    "writes": [
        {"op_id": "w0-0", "core": "core-eu", "complete": 1.0, "result": "ok", "revision": 2},
        {"op_id": "w0-1", "core": "core-ap", "complete": 4.1, "result": "failed", "revision": None},
    ],
}


def test_the_timeline_is_well_formed_svg_with_every_series():
    svg = render_timeline_svg(REPORT["timeline"], REPORT["events"], REPORT["writes"])
    root = ElementTree.fromstring(svg)  # raises if the SVG is not well-formed XML
    assert root.tag.endswith("svg")
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "second 4: 5 failed" in titles  # the error bar
    assert "0-4 s: leader core-ap" in titles and "5-15 s: leader core-us" in titles
    assert "4-5 s: leader None" in titles  # the election gap, in grey
    assert any(t.startswith("w0-1 to core-ap: failed") for t in titles)
    texts = "".join(root.itertext())
    assert "inject: kill -9 leader" in texts and "heal: kill -9 leader" in texts


def test_the_html_page_escapes_text_and_lists_each_verdict(tmp_path):
    json_path, html_path = write_report(REPORT, tmp_path / "run")
    assert json.loads(json_path.read_text())["drill"] == "leader-kill"
    page = html_path.read_text()
    assert "FAILED" in page
    assert "kill -9 the &lt;leader&gt;" in page and "99.0% &amp; less" in page
    assert page.count("<tr><td>") == 2
    assert "3 x edge-eu: status 502" in page
    assert "<svg" in page


def test_an_empty_run_still_renders():
    page = render_html({"drill": "x", "passed": False, "error": "no root", "verdicts": []})
    assert "FAILED" in page
    ElementTree.fromstring(render_timeline_svg([], []))


def test_summary_table_has_a_line_per_drill_with_its_numbers():
    broken = {"drill": "edge-cut-off", "passed": False, "error": "nft failed", "verdicts": []}
    table = summary_table([REPORT, broken]).splitlines()
    assert table[0].split()[:2] == ["drill", "result"]
    assert table[1].split()[:3] == ["leader-kill", "FAIL", "99.000%"]
    assert "0.40 s" in table[1] and "edge availability" in table[1]
    assert table[2].endswith("nft failed")
