"""Commands with their own parsers are reached through `dispa`."""

from __future__ import annotations

import pytest

from dispa import cli


def test_register_is_handed_its_own_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["register", "--pool", "app"])
    assert stopped.value.code == 2
    assert "--etcd" in capsys.readouterr().err  # its own parser names what is missing


def test_register_is_listed_in_dispa_help(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "register" in capsys.readouterr().out


def test_ai_score_writes_a_score_per_row(tmp_path, capsys) -> None:
    series = tmp_path / "series.csv"
    rows = [f"2026-01-01 00:{m // 60:02d}:{m % 60:02d},{10 + (m % 7)}" for m in range(50)]
    series.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert cli.main(["ai", "score", str(series)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert len(lines) == 51
    assert all(0.0 <= float(line.rsplit(",", 1)[1]) <= 1.0 for line in lines[1:])


def test_ai_score_names_a_missing_file(tmp_path, capsys) -> None:
    assert cli.main(["ai", "score", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err
