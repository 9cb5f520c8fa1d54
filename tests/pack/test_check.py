"""Tests of cloudfree.pack.check: a packed file against its manifest."""

import h5py
import pandas as pd
import pytest

from cloudfree.errors import InputDataError
from cloudfree.pack.check import validate

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
