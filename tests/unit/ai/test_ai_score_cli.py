from __future__ import annotations

import csv
import io

from dispa.ai.score_cli import main_score
from tests.unit.ai.ai_series import daily_series


def write_series(path, rows, header="timestamp,value"):
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))


def test_round_trip_keeps_every_row_and_adds_a_score(tmp_path):
    timestamps, values = daily_series(days=2)
    rows = [(f"{int(t)}", f"{v:.3f}") for t, v in zip(timestamps, values, strict=True)]
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    write_series(source, rows)
    assert main_score([str(source), "-o", str(target)]) == 0
    with target.open() as handle:
        out = list(csv.reader(handle))
    assert out[0] == ["timestamp", "value", "anomaly_score"]
    assert [tuple(row[:2]) for row in out[1:]] == rows
    scores = [float(row[2]) for row in out[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == 0.0


def test_writes_to_stdout_and_accepts_iso_timestamps(tmp_path, capsys):
    source = tmp_path / "in.csv"
    write_series(source, [("2014-04-10 00:04:00", "1.0"), ("2014-04-10T00:09:00Z", "2.5")])
    assert main_score([str(source)]) == 0
    out = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert out == [
        ["timestamp", "value", "anomaly_score"],
        ["2014-04-10 00:04:00", "1.0", "0.000000"],
        ["2014-04-10T00:09:00Z", "2.5", "0.000000"],
    ]


def test_missing_file_is_a_clear_error_with_status_2(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    assert main_score([str(missing)]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and str(missing) in err
    assert "Traceback" not in err


def test_bad_header_is_reported_on_line_1(tmp_path, capsys):
    source = tmp_path / "in.csv"
    write_series(source, [("1", "2")], header="time,val")
    assert main_score([str(source)]) == 2
    err = capsys.readouterr().err
    assert "line 1" in err and "timestamp,value" in err


def test_bad_rows_name_their_line(tmp_path, capsys):
    cases = {
        "1,2\n3,abc\n": "line 3: bad value 'abc'",
        "1,2\nyesterday,4\n": "line 3: bad timestamp 'yesterday'",
        "1,2\n3,4\n5,6,7\n": "line 4: expected 2 fields, found 3",
        "1,nan\n": "line 2: value is not finite",
    }
    for body, message in cases.items():
        source = tmp_path / "in.csv"
        source.write_text("timestamp,value\n" + body)
        assert main_score([str(source)]) == 2
        err = capsys.readouterr().err
        assert message in err, (body, err)
        assert "Traceback" not in err
