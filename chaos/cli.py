"""``dispa drill list`` and ``dispa drill run NAME|all [--duration 30s] [--report-dir DIR]``.

Each run builds its own topology, prints progress lines, writes report.json and
report.html (plus every node's log) to its own folder, and removes every namespace,
link and process it created, also after an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from chaos import layout, shell
from chaos.drills import DRILLS, find
from chaos.nodes import DrillError
from chaos.report import summary_table, write_report
from chaos.runner import plain_run, run_drill
from chaos.topology import Topology

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dispa drill", description="Chaos and failover drills (see docs/drills.md)."
    )
    commands = parser.add_subparsers(dest="command", metavar="list|run")
    commands.required = True
    commands.add_parser("list", help="list the drills")
    run = commands.add_parser("run", help="run a drill, or all of them")
    run.add_argument("name", help="a drill name from 'dispa drill list', or 'all'")
    run.add_argument(
        "--duration", default="20s", help="workload time per drill, e.g. 30s or 2m (default: 20s)"
    )
    run.add_argument(
        "--report-dir",
        default="drill-reports",
        help="where each run's folder goes: report.json, report.html, logs "
        "(default: drill-reports)",
    )
    run.add_argument("--quick", action="store_true", help="with 'all': only the short drills")
    return parser


def parse_duration(text: str) -> float:
    from dispa.config.units import parse_duration as parse

    try:
        seconds = float(parse(text))
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"--duration: '{text}' is not a duration; write it like 30s or 2m"
        ) from None
    if not 10 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("--duration must be between 10s and 1h")
    return seconds


def main_drill(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print(list_text())
        return EXIT_OK
    try:
        duration = parse_duration(args.duration)
    except argparse.ArgumentTypeError as error:
        print(f"dispa drill: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.name == "all":
        specs = [d for d in DRILLS if d.quick or not args.quick]
    else:
        spec = find(args.name)
        if spec is None:
            names = ", ".join(d.name for d in DRILLS)
            print(
                f"dispa drill: no drill named '{args.name}'; the drills are: {names}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        specs = [spec]
    problems = shell.missing_prerequisites()
    if problems:
        for problem in problems:
            print(f"dispa drill: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = []
    try:
        for spec in specs:
            results.append(run_one(spec, duration, Path(args.report_dir), _progress))
    except KeyboardInterrupt:
        print("drill interrupted: every process, namespace and link it created is removed")
        return EXIT_INTERRUPTED
    if len(results) > 1:
        print()
        print(summary_table(results))
    return EXIT_OK if all(r.get("passed") for r in results) else EXIT_FAILED


def list_text() -> str:
    lines = [f"{'drill':<20} {'suite':<6} what it does"]
    for drill in DRILLS:
        lines.append(
            f"{drill.name:<20} {'quick' if drill.quick else 'long':<6} {drill.description}"
        )
    return "\n".join(lines)


def _progress(text: str) -> None:
    print(text, flush=True)


def run_one(spec, duration: float, report_dir: Path, progress) -> dict:
    """Run one drill end to end; returns the report data (with "error" if it broke)."""
    folder = report_dir / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="dispa-drill-"))
    progress(f"== drill {spec.name}: {spec.description}")
    topology = Topology(layout.host_specs())
    previous = signal.signal(signal.SIGTERM, _terminate)
    report: dict
    try:
        topology.create()
        progress(
            f"topology {topology.prefix}: {len(topology.hosts)} namespaces on {topology.subnet}"
        )
        run = asyncio.run(run_drill(spec, topology, scratch, duration, progress))
        report = plain_run(run)
    except (DrillError, shell.CommandError) as error:
        progress(f"drill {spec.name} could not run: {error}")
        report = {"drill": spec.name, "passed": False, "error": str(error), "verdicts": []}
    finally:
        topology.destroy()
        signal.signal(signal.SIGTERM, previous)
        logs = scratch / "logs"
        if logs.is_dir():
            shutil.copytree(logs, folder / "logs", dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    json_path, html_path = write_report(report, folder)
    for verdict in report.get("verdicts", []):
        mark = "pass" if verdict["passed"] else "FAIL"
        progress(f"  {mark:<4} {verdict['name']}: {verdict['summary']}")
        for problem in verdict.get("problems", [])[:3]:
            progress(f"         {problem}")
    progress(
        f"drill {spec.name}: {'PASSED' if report.get('passed') else 'FAILED'}; report {html_path}"
    )
    report["report_html"] = str(html_path)
    report["report_json"] = str(json_path)
    return report


def _terminate(signum, frame) -> None:
    # Turned into KeyboardInterrupt so the same cleanup path as Ctrl-C runs.
    raise KeyboardInterrupt
