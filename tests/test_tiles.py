import pytest
import rasterio

from cloudfree.errors import ConfigError
from cloudfree.manifest import read_manifest
from cloudfree.tiles.region import download_tiles

SMALL = {
    "source": "synthetic",
    "synthetic": {
        "seed": 5,
        "tiles_x": 3,
        "tiles_y": 1,
        "tile_size": 32,
        "overlap": 8,
        "n_dates": 3,
    },
}


def test_synthetic_tiles_land_in_place_with_their_manifest(tmp_path):
    tiles_dir, manifest_csv = tmp_path / "resources/tiles/r", tmp_path / "results/tiles/r.csv"
    manifest = download_tiles("r", SMALL, tiles_dir, manifest_csv)
    assert read_manifest(manifest_csv).equals(manifest)
    assert len(manifest) == 9 and set(manifest["split"]) == {"train", "val", "test"}
    for path in [*manifest["image"], *manifest["mask"]]:
        assert path.startswith(str(tiles_dir)) and rasterio.open(path).count in (1, 13)
    # nothing but the final folder: the temporary one was moved into place
    assert [p.name for p in tiles_dir.parent.iterdir()] == ["r"]


def test_unknown_source_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"regions\.r\.source"):
        download_tiles("r", {"source": "ftp"}, tmp_path / "t", tmp_path / "m.csv")
    assert not (tmp_path / "t").exists() and not (tmp_path / "m.csv").exists()
