"""``dispa demo`` runs the example cores and edges from copies in a scratch folder: their
relative data directories (read beside the file) land there, and go with it at the end,
while the geo database stays the example's own."""

from __future__ import annotations

from pathlib import Path

from dispa.config.cluster import CoreConfig
from dispa.config.edge import EdgeConfig
from dispa.config.load import load_model_file
from dispa.runtime.cluster_demo import _scratch_copy, examples_dir


def test_copies_keep_data_in_the_scratch_folder_and_find_the_geo_database(tmp_path: Path):
    core = load_model_file(CoreConfig, _scratch_copy(examples_dir() / "core-1.yaml", tmp_path))
    assert core.node.data_dir == str(tmp_path / "run" / "core-1")
    for name in ("edge-eu", "edge-us"):
        edge = load_model_file(EdgeConfig, _scratch_copy(examples_dir() / f"{name}.yaml", tmp_path))
        assert edge.edge.data_dir == str(tmp_path / "run" / name)
        assert Path(edge.geo.database).is_file()
