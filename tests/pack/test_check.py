"""Tests of cloudfree.pack.check: a manifest's tile folder before packing, the packed file
against its manifest after."""

import h5py
import pandas as pd
import pytest

from cloudfree.errors import InputDataError
from cloudfree.manifest import write_manifest
from cloudfree.pack.check import check_tiles_stamp, validate
from cloudfree.tiles.settings import TILES_STAMP, manifest_stamp_path, new_stamp, write_stamp

from .sample import DATES, pack


def test_validate_reports_differences(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
    validate(dest, manifest)
    extra = manifest[manifest.tile == "a"].assign(tile="z")
    with pytest.raises(InputDataError, match=r"tiles missing: \['z'\]"):
        validate(dest, pd.concat([manifest, extra]))
    fewer = manifest[manifest.date != DATES[0]]
    with pytest.raises(InputDataError, match=r"dates .* differ"):
        validate(dest, fewer)
    bigger = manifest.assign(width=32)
    with pytest.raises(InputDataError, match="s2 shape"):
        validate(dest, bigger)
    with pytest.raises(InputDataError, match=r"tiles not in the manifest: \['d'\]"):
        validate(dest, manifest[manifest.tile != "d"])
    with pytest.raises(InputDataError, match=r"region 'testland', manifest 'elsewhere'"):
        validate(dest, manifest.assign(region="elsewhere"))
    with pytest.raises(InputDataError, match="tile a: split train, manifest test"):
        validate(dest, manifest.assign(split="test"))
    with pytest.raises(InputDataError, match="tile a: probability presence differs"):
        validate(dest, manifest.assign(probability="p.tif"))


def test_truncated_and_damaged_files_are_named(tmp_path, manifest):
    good = pack(manifest, tmp_path / "good.h5")
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"cut.h5"):
        validate(cut, manifest)
    with h5py.File(good, "a") as h5:
        del h5["tiles/b/doy"]
    with pytest.raises(InputDataError, match=r"good\.h5: tile b lacks \['doy'\]"):
        validate(good, manifest)


def test_the_tile_folder_must_hold_the_download_of_its_manifest(tmp_path, manifest):
    csv = write_manifest(manifest, tmp_path / "results/tiles/testland.csv")
    check_tiles_stamp(csv, manifest)  # no stamp beside it (written by hand): not checked
    tiles = tmp_path / "tiles"  # where the sample's files are
    ours = new_stamp("testland", "settings", tiles)
    write_stamp(manifest_stamp_path(csv), ours)
    with pytest.raises(InputDataError, match=r"now holds no download stamp: another run rewrote"):
        check_tiles_stamp(csv, manifest)
    write_stamp(tiles / TILES_STAMP, ours)
    check_tiles_stamp(csv, manifest)
    write_stamp(tiles / TILES_STAMP, new_stamp("testland", "other settings", tiles))
    with pytest.raises(InputDataError, match=rf"{csv}: written by download {ours['download']}"):
        check_tiles_stamp(csv, manifest)
    # a manifest pointing at no file in its tile folder (the dataset's own files) is not checked
    check_tiles_stamp(csv, manifest.assign(image="/data/x.tif", mask="/data/x_cld.tif"))
