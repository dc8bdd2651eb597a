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
