"""Private files and folders: 0600 and 0700 whatever the umask, written atomically."""

from __future__ import annotations

import os
import stat

import pytest

from dispa.private_files import (
    make_private_dir,
    private_open,
    tighten_file,
    write_private_file,
)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(params=[0o022, 0o000, 0o077], ids=["umask022", "umask000", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_folders_are_created_0700_with_every_missing_parent(tmp_path, umask):
    target = tmp_path / "a" / "b" / "c"
    make_private_dir(target)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(folder) == 0o700, folder


def test_an_existing_folder_is_tightened_but_not_its_parents(tmp_path, umask):
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o755)
    data = parent / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    make_private_dir(data)
    assert mode(data) == 0o700
    assert mode(parent) == 0o755


def test_a_folder_the_user_chose_is_left_alone(tmp_path, umask):
    chosen = tmp_path / "backups"
    chosen.mkdir()
    os.chmod(chosen, 0o755)
    make_private_dir(chosen, tighten=False)
    assert mode(chosen) == 0o755
    make_private_dir(chosen / "new", tighten=False)
    assert mode(chosen / "new") == 0o700


def test_a_file_in_the_way_of_a_folder_is_an_error(tmp_path, umask):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(OSError):
        make_private_dir(tmp_path / "file" / "sub")


def test_write_creates_a_0600_file_and_replaces_the_old_one_whole(tmp_path, umask):
    path = tmp_path / "state"
    write_private_file(path, b"first")
    assert path.read_bytes() == b"first"
    assert mode(path) == 0o600
    os.chmod(path, 0o644)  # an old file with a loose mode is replaced, not reused
    write_private_file(path, b"second", durable=False)
    assert path.read_bytes() == b"second"
    assert mode(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["state"], "a temporary file was left behind"


def test_write_never_follows_a_link_planted_at_a_temporary_name(tmp_path, umask, monkeypatch):
    import dispa.private_files as private_files

    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    monkeypatch.setattr(private_files.secrets, "token_hex", lambda _: "fixed")
    os.symlink(victim, tmp_path / "state.fixed.tmp")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "state", b"data")
    assert victim.read_bytes() == b"untouched"
    assert not (tmp_path / "state").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, umask):
    path = tmp_path / "state"
    write_private_file(path, b"old")
    with pytest.raises(TypeError):
        write_private_file(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state"]


def test_private_open_creates_0600_files_and_reads_unchanged(tmp_path, umask):
    path = tmp_path / "journal"
    with private_open(path, "wb") as handle:
        handle.write(b"abc")
    assert mode(path) == 0o600
    os.chmod(path, 0o644)
    with private_open(path, "ab") as handle:  # O_CREAT on an existing file: tightened
        handle.write(b"d")
    assert mode(path) == 0o600
    os.chmod(path, 0o640)
    with private_open(path, "rb") as handle:  # a read changes nothing
        assert handle.read() == b"abcd"
    assert mode(path) == 0o640


def test_tighten_file_fixes_a_loose_file_and_ignores_a_missing_one(tmp_path, umask):
    path = tmp_path / "old"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    tighten_file(path)
    assert mode(path) == 0o600
    tighten_file(tmp_path / "missing")  # no error
