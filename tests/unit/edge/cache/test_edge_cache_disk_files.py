"""The disk tier's file format and layout, on their own."""

import msgpack
import pytest

from dispa.edge.cache.disk_files import DiskFiles, pack, unpack
from dispa.edge.cache.entry import CorruptEntry
from dispa.edge.cache.key import variant_id


def test_pack_round_trips_any_primary_key():
    assert unpack(pack("GET https://a/\udcff", b"blob")) == ("GET https://a/\udcff", b"blob")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([2, b"key", b"blob"]),  # unknown format
        msgpack.packb([1, "key as text", b"blob"]),
        msgpack.packb([1, b"key", "blob as text"]),
        msgpack.packb([1, b"key"]),
        msgpack.packb({"format": 1}),
    ],
)
def test_unpack_refuses_what_is_not_a_cache_file(data):
    with pytest.raises(CorruptEntry):
        unpack(data)


def test_files_are_laid_out_by_hash(tmp_path):
    files = DiskFiles(str(tmp_path))
    variant = variant_id("GET https://a/", b"")
    assert len(variant) == 64
    assert files.path(variant) == str(tmp_path / variant[:2] / f"{variant}.entry")


def test_variant_ids_differ_by_primary_and_vary_key():
    ids = {variant_id("GET https://a/", b""), variant_id("GET https://a/", b"x")}
    ids.add(variant_id("GET https://b/", b""))
    assert len(ids) == 3


def test_write_read_remove(tmp_path):
    files = DiskFiles(str(tmp_path))
    variant = variant_id("k", b"")
    files.write(variant, pack("k", b"blob"))
    assert files.read(variant) == b"blob"
    files.touch(variant)
    files.remove(variant)
    files.remove(variant)  # already gone: no error
    files.touch(variant)  # nor here
    with pytest.raises(FileNotFoundError):
        files.read(variant)


def test_a_file_that_cannot_be_removed_is_logged_not_raised(tmp_path, caplog):
    files = DiskFiles(str(tmp_path))
    variant = variant_id("k", b"")
    (tmp_path / variant[:2] / f"{variant}.entry").mkdir(parents=True)  # a directory in its way
    files.remove(variant)
    assert "cannot remove" in caplog.text
