"""The systemd units in deploy/systemd, checked by systemd's own tools.

``systemd-analyze verify`` parses each unit as systemd would load it and reports unknown
keys, bad values and an ExecStart binary that does not exist, so each unit is copied with
/opt/dispa/.venv/bin/dispa pointed at this checkout's dispa. ``systemd-analyze security
--offline`` scores the sandboxing; ``systemd-sysusers --root`` creates the service user
in a scratch root. Nothing is installed on this machine and no unit is started here.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNITS = REPO / "deploy" / "systemd"
INSTALLED_DISPA = "/opt/dispa/.venv/bin/dispa"
# The dispa of this checkout: the venv's when tests run from it, else the interpreter's.
LOCAL_DISPA = Path(sys.executable).with_name("dispa")
# systemd's scale runs from 0 (locked down) to 10; 1.7 is what the core and edge score.
EXPOSURE_LIMIT = {"dispa-core.service": 2.0, "dispa-edge.service": 2.0}


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: install the systemd package (make system-packages)"
    return path


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser


@pytest.fixture
def local_units(tmp_path: Path) -> Path:
    """The units, with their ExecStart pointed at this checkout's dispa."""
    assert LOCAL_DISPA.exists(), f"{LOCAL_DISPA} not found: run make setup"
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".timer"):
            text = unit.read_text().replace(INSTALLED_DISPA, str(LOCAL_DISPA))
            (tmp_path / unit.name).write_text(text)
    return tmp_path


def test_every_unit_passes_systemd_analyze_verify(local_units: Path) -> None:
    names = sorted(path.name for path in local_units.iterdir())
    assert names == [
        "dispa-backup.service",
        "dispa-backup.timer",
        "dispa-core.service",
        "dispa-edge.service",
    ]
    result = subprocess.run(
        [_tool("systemd-analyze"), "verify", *names],
        cwd=local_units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    # verify exits 0 on unknown keys and unparsable values, and only warns: every line
    # naming one of our units is a problem in it.
    problems = [line for line in output.splitlines() if any(name in line for name in names)]
    assert result.returncode == 0 and not problems, output


def test_verify_catches_a_broken_unit(local_units: Path) -> None:
    """The check above is not vacuous: a typo and a missing binary are reported."""
    core = local_units / "dispa-core.service"
    text = core.read_text().replace("Restart=on-failure", "Restart=on-failur\nRestartSecs=2")
    core.write_text(text.replace(str(LOCAL_DISPA), "/nonexistent/dispa"))
    result = subprocess.run(
        [_tool("systemd-analyze"), "verify", core.name],
        cwd=local_units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert "Unknown key 'RestartSecs'" in output
    assert "on-failur" in output
    assert "/nonexistent/dispa" in output and result.returncode != 0


@pytest.mark.parametrize("name", sorted(EXPOSURE_LIMIT))
def test_core_and_edge_are_sandboxed(local_units: Path, name: str) -> None:
    result = subprocess.run(
        [
            _tool("systemd-analyze"),
            "security",
            "--offline=yes",
            f"--threshold={EXPOSURE_LIMIT[name] * 10:.0f}",  # the threshold is in tenths
            name,
        ],
        cwd=local_units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    summary = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert result.returncode == 0 and summary, result.stdout[-2000:] + result.stderr
    score = float(summary[0].split(":")[1].split()[0])
    assert score <= EXPOSURE_LIMIT[name], summary[0]


@pytest.mark.parametrize(
    ("name", "command", "state_directory"),
    [
        ("dispa-core.service", "core -c /etc/dispa/core.yaml", "dispa/core"),
        ("dispa-edge.service", "edge -c /etc/dispa/edge.yaml", "dispa/edge"),
    ],
)
def test_core_and_edge_units_run_the_real_command_as_the_service_user(
    name: str, command: str, state_directory: str
) -> None:
    service = _unit(name)["Service"]
    assert service["ExecStart"] == f"{INSTALLED_DISPA} {command}"
    assert (service["User"], service["Group"]) == ("dispa", "dispa")
    assert service["StateDirectory"] == state_directory
    assert int(service["LimitNOFILE"]) >= 65536
    assert service["Restart"] == "on-failure"
    # dispa exits 2 for a bad file or a missing secret; restarting would only loop.
    assert service["RestartPreventExitStatus"] == "2"
    # Neither node reloads on SIGHUP (a core ignores it, an edge would stop), so no unit
    # offers a reload that would not do what it says.
    assert "ExecReload" not in service
    # Longer than the default drain_timeout (15 s), so a stop drains before SIGKILL.
    assert int(service["TimeoutStopSec"]) > 15


def test_the_command_line_in_the_units_is_accepted_by_dispa() -> None:
    """`dispa core -c FILE` and `dispa edge -c FILE` are real commands with these flags."""
    from dispa.cli import build_parser

    parser = build_parser()
    for name in ("dispa-core.service", "dispa-edge.service"):
        arguments = _unit(name)["Service"]["ExecStart"].split()[1:]
        parsed = parser.parse_args(arguments)
        assert parsed.command == arguments[0] and parsed.config == arguments[2]


def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / name).touch()
    result = subprocess.run(
        [_tool("systemd-sysusers"), f"--root={root}", str(UNITS / "dispa.sysusers.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").open()}
    assert "dispa" in passwd, (root / "etc/passwd").read_text()
    user = passwd["dispa"]
    assert int(user[2]) < 1000, "a system user"
    assert user[5] == "/var/lib/dispa" and user[6].strip() == "/usr/sbin/nologin"
    assert any(line.startswith("dispa:") for line in (root / "etc/group").open())


def test_the_backup_timer_runs_the_backup_service() -> None:
    timer = _unit("dispa-backup.timer")
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert timer["Install"]["WantedBy"] == "timers.target"
    service = _unit("dispa-backup.service")["Service"]
    assert service["Type"] == "oneshot"
    assert f"{INSTALLED_DISPA} backup -o" in service["ExecStart"]
    assert service["Environment"].startswith("DISPA_ADMIN=")
