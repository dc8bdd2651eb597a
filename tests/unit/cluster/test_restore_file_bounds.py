"""``dispa restore FILE`` reads a file an operator hands it: one nested past the parser's
limit is refused with the usual message, not a RecursionError traceback."""

from __future__ import annotations

from dispa.cluster.client import EXIT_BAD_INPUT, restore


async def test_a_backup_nested_too_deep_is_refused_before_any_call(tmp_path, capsys) -> None:
    source = tmp_path / "backup.json"
    source.write_text("[" * 100_000 + "]" * 100_000)
    # The admin address is never reached: the file is refused first.
    assert await restore("127.0.0.1:1", str(source)) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "not a Dispa backup" in error and "nested too deeply" in error, error
