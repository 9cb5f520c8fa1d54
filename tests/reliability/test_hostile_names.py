"""Hostile names and damaged files: a tile or date read from a file never becomes a path
outside the outputs, a misshapen or corrupted packed file is refused naming the file, tile and
dataset, and the atomic writer never deletes a directory that cloudfree did not write."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cloudfree.errors import InputDataError, StorageError
from cloudfree.infer.region import infer_region
from cloudfree.io import OUTPUT_MARKER, atomic_path
from cloudfree.manifest import validate_manifest
from cloudfree.mosaic.region import mosaic_region, product_files
from cloudfree.packed import compute_norm_stats, open_packed, read_meta, read_tile
from tests.model_file import infer_settings, write_model_file
from tests.mosaic.inputs import X0, region_settings, write_tile
from tests.packed import make_packed

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_file(tmp_path_factory.mktemp("model") / "model.pt")


def packed(tmp_path: Path) -> Path:
    """Three tiles t00 (train), t01 (val), t02 (test) of three 16 x 16 dates."""
    return make_packed(tmp_path / "r.h5", n_tiles=3, size=16, dates=3, seed=3)


def set_dates(path: Path, tile: str, last: str) -> None:
    """Replace the last date of ``tile``."""
    with h5py.File(path, "a") as h5:
        g = h5["tiles"][tile]
        dates = [d.decode() for d in g["dates"][()]]
        del g["dates"]
        g.create_dataset("dates", data=[*dates[:-1], last], dtype=h5py.string_dtype())


def replace_dataset(path: Path, tile: str, key: str, data: np.ndarray, **kw: object) -> None:
    with h5py.File(path, "a") as h5:
        g = h5["tiles"][tile]
        del g[key]
        g.create_dataset(key, data=data, **kw)


def corrupt_chunk(path: Path, tile: str, key: str) -> None:
    """Store ``key`` of ``tile`` with HDF5's fletcher32 checksum, then flip a byte of its
    first chunk on disk (what a failing disk or a broken copy does)."""
    with h5py.File(path, "a") as h5:
        g = h5["tiles"][tile]
        data = g[key][()]
        del g[key]
        ds = g.create_dataset(key, data=data, chunks=(1, *data.shape[1:]), fletcher32=True)
        info = ds.id.get_chunk_info(0)
        at = info.byte_offset + info.size // 2
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0xFF]))


def infer(model: Path, h5: Path, out: Path) -> list[str]:
    return infer_region(model, h5, out / "tiles", out / "eval.h5", **infer_settings())


def everything(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- 1. names and dates read from files -------------------------------------------------


def test_a_tile_named_dotdot_in_a_packed_file_is_refused_before_inference_writes(
    tmp_path: Path, model: Path
) -> None:
    h5 = packed(tmp_path)
    with h5py.File(h5, "a") as f:
        f["tiles"].move("t01", "..")
    out = tmp_path / "predictions"
    with pytest.raises(InputDataError, match=r"r\.h5: tile name '\.\.' is not allowed"):
        infer(model, h5, out)
    assert everything(out) == []


@pytest.mark.parametrize("kind", ["absolute", "parent", "not a day"])
def test_a_date_in_a_packed_file_that_is_a_path_is_refused_before_inference_writes(
    tmp_path: Path, model: Path, kind: str
) -> None:
    h5 = packed(tmp_path)
    evil = {
        "absolute": str(tmp_path / "evil" / "2031-01-01"),
        "parent": "../../2031-01-01",
        "not a day": "2031-02-30",
    }[kind]
    set_dates(h5, "t02", evil)
    out = tmp_path / "predictions"
    with pytest.raises(InputDataError, match=r"r\.h5: tile t02: date .* is not a calendar date"):
        infer(model, h5, out)
    assert everything(out) == [] and not (tmp_path / "evil").exists()
    assert [p for p in everything(tmp_path) if p.endswith(".tif")] == []


@pytest.mark.parametrize("name", ["a b", "t1\n", "-x", "x" * 129])
def test_every_reader_of_a_packed_file_refuses_an_unsafe_tile_name(
    tmp_path: Path, name: str
) -> None:
    h5 = packed(tmp_path)
    with h5py.File(h5, "a") as f:
        f["tiles"].move("t00", name)
    with pytest.raises(InputDataError, match=r"r\.h5: tile name .* is not allowed"):
        read_meta([h5])  # training
    with open_packed(h5) as f, pytest.raises(InputDataError, match=r"r\.h5: tile name"):
        read_tile(f, name)  # inference, metrics


def test_dates_repeated_in_a_packed_tile_are_refused(tmp_path: Path) -> None:
    """Two dates of one name would write the same GeoTIFF twice, the first one lost."""
    h5 = packed(tmp_path)
    with h5py.File(h5, "r") as f:
        first = f["tiles/t00/dates"][0].decode()
    set_dates(h5, "t00", first)
    with open_packed(h5) as f, pytest.raises(InputDataError, match="not strictly ascending"):
        read_tile(f, "t00")


def manifest_row(tile: str, date: str) -> dict[str, object]:
    return {
        "region": "r", "source": "folder", "tile": tile, "date": date, "split": "train",
        "image": "a.tif", "mask": "m.tif", "crs": "EPSG:32632", "left": 0.0, "bottom": 0.0,
        "right": 1.0, "top": 1.0, "width": 1, "height": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("tile", "date", "message"),
    [
        ("t1", "2021-02-30", r"m\.csv: date '2021-02-30' is not a calendar date .*tile t1"),
        ("t1", "2021-13-01", r"m\.csv: date '2021-13-01' is not a calendar date"),
        ("t1\n", "2021-01-01", r"m\.csv: tile name 't1\\n' is not allowed.*tile id of 1 row"),
        ("_t1", "2021-01-01", r"m\.csv: tile name '_t1' is not allowed"),
    ],
)
def test_a_manifest_refuses_days_that_do_not_exist_and_names_with_a_newline(
    tile: str, date: str, message: str
) -> None:
    with pytest.raises(InputDataError, match=message):
        validate_manifest(pd.DataFrame([manifest_row(tile, date)]), where="m.csv")


def test_a_mosaic_date_that_is_a_path_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "A", X0, 100)
    with pytest.raises(InputDataError, match=r"dates to mosaic of .*tiles: date '\.\./x'"):
        mosaic_region(root, tmp_path / "m", **region_settings(), dates=["../x"])
    assert everything(tmp_path) == ["tiles", *(f"tiles/{p}" for p in everything(root))]


def test_a_prediction_file_of_a_day_that_does_not_exist_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "A", X0, 100)
    write_tile(root, "A", X0, 100, date="2021-02-30")
    with pytest.raises(InputDataError, match=r"A/2021-02-30\.tif: date '2021-02-30'"):
        mosaic_region(root, tmp_path / "m", **region_settings())
    assert not (tmp_path / "m").exists()


def test_a_tile_folder_that_is_not_a_tile_name_is_refused_and_hidden_entries_ignored(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "A", X0, 100)
    write_tile(root, ".old", X0, 100)  # hidden: a temporary, not a tile
    (root / OUTPUT_MARKER).write_text("")
    assert product_files(root)["reflectance"] == {"2021-05-01": [root / "A/2021-05-01.tif"]}
    write_tile(root, "A copy", X0, 100)
    with pytest.raises(InputDataError, match=r"tiles: tile name 'A copy' is not allowed"):
        product_files(root)


# --- 2. datasets of the wrong shape -----------------------------------------------------


def test_a_mask_of_the_wrong_shape_is_refused_naming_file_tile_dataset_and_shapes(
    tmp_path: Path, model: Path
) -> None:
    h5 = packed(tmp_path)
    with h5py.File(h5, "r") as f:
        mask = f["tiles/t00/mask"][()]
    replace_dataset(h5, "t00", "mask", mask[:, :, :15])
    message = (
        r"r\.h5: tile t00 mask has shape \(3, 16, 15\), expected \(3, 16, 16\) "
        r"\(s2 has \(3, 13, 16, 16\)\)"
    )
    with pytest.raises(InputDataError, match=message):
        read_meta([h5])  # training
    with pytest.raises(InputDataError, match=message):
        infer(model, h5, tmp_path / "predictions")  # inference
    assert everything(tmp_path / "predictions") == []


@pytest.mark.parametrize(
    ("key", "shape", "message"),
    [
        ("s2", (3, 13, 16), r"tile t01 s2 has shape \(3, 13, 16\), expected \(dates, 13,"),
        ("gap", (2, 16, 16), r"tile t01 gap has shape \(2, 16, 16\), expected \(3, 16, 16\)"),
        ("doy", (4,), r"tile t01 doy has shape \(4,\), expected \(3,\)"),
        ("sources/image", (2,), r"tile t01 sources/image has shape \(2,\), expected \(3,\)"),
    ],
)
def test_any_dataset_of_the_wrong_shape_is_refused(
    tmp_path: Path, key: str, shape: tuple[int, ...], message: str
) -> None:
    h5 = packed(tmp_path)
    with h5py.File(h5, "a") as f:
        del f["tiles/t01"][key]
        f["tiles/t01"].create_dataset(key, data=np.ones(shape, dtype=np.uint16))
    with pytest.raises(InputDataError, match=rf"r\.h5: {message}"):
        read_meta([h5])
    with open_packed(h5) as f, pytest.raises(InputDataError, match=rf"r\.h5: {message}"):
        read_tile(f, "t01")


# --- 3. a failed checksum ---------------------------------------------------------------


def test_a_failed_checksum_of_a_tile_is_refused_naming_file_and_tile(
    tmp_path: Path, model: Path
) -> None:
    h5 = packed(tmp_path)
    corrupt_chunk(h5, "t02", "mask")
    message = r"tile t02 of .*r\.h5 is corrupted or unreadable \(.*filter returned failure"
    with open_packed(h5) as f, pytest.raises(InputDataError, match=message):
        read_tile(f, "t02")
    with pytest.raises(InputDataError, match=message):
        infer(model, h5, tmp_path / "predictions")
    assert everything(tmp_path / "predictions") == []


def test_a_failed_checksum_while_computing_the_norm_is_refused_naming_file_and_tile(
    tmp_path: Path,
) -> None:
    h5 = packed(tmp_path)
    corrupt_chunk(h5, "t00", "s2")
    with h5py.File(h5, "a") as f:
        del f.attrs["norm_split"]  # no stored sums: the pixels are read
    with pytest.raises(InputDataError, match=r"tile t00 of .*r\.h5 is corrupted or unreadable"):
        compute_norm_stats([h5])


# --- 4. the atomic writer deletes only what cloudfree wrote -----------------------------

REFUSED = r"exists and is a directory that cloudfree did not write; move it away"


def users_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("three years of work")
    return path


def test_a_directory_cloudfree_did_not_write_is_not_replaced_by_a_directory(
    tmp_path: Path,
) -> None:
    dest = users_folder(tmp_path / "tiles")
    ran = False
    with pytest.raises(StorageError, match=rf"tiles {REFUSED}"), atomic_path(dest) as tmp:
        ran = True  # refused before the block runs: no work is wasted
        tmp.mkdir()
    assert not ran
    assert (dest / "thesis.tex").read_text() == "three years of work"
    assert everything(tmp_path) == ["tiles", "tiles/thesis.tex"]


def test_a_directory_that_appears_while_writing_is_left_and_the_temporary_removed(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "tiles"
    with pytest.raises(StorageError, match=REFUSED), atomic_path(dest) as tmp:
        tmp.mkdir()
        (tmp / "a.tif").write_text("new")
        users_folder(dest)
    assert everything(tmp_path) == ["tiles", "tiles/thesis.tex"]


def test_a_file_output_never_replaces_a_directory(tmp_path: Path) -> None:
    dest = users_folder(tmp_path / "model.pt")
    with pytest.raises(StorageError, match=REFUSED), atomic_path(dest) as tmp:
        tmp.write_text("weights")
    (dest / OUTPUT_MARKER).write_text("")  # even one that cloudfree wrote
    with pytest.raises(StorageError, match="is a directory and the new output is a file"):
        with atomic_path(dest) as tmp:
            tmp.write_text("weights")
    assert everything(tmp_path) == ["model.pt", f"model.pt/{OUTPUT_MARKER}", "model.pt/thesis.tex"]


def test_a_directory_output_carries_the_marker_and_replaces_its_own_kind(tmp_path: Path) -> None:
    dest = tmp_path / "tiles"
    for content in ("old", "new"):
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / f"{content}.tif").write_text(content)
    assert everything(tmp_path) == ["tiles", f"tiles/{OUTPUT_MARKER}", "tiles/new.tif"]


def test_mosaics_into_a_users_folder_leave_it_untouched(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    write_tile(root, "A", X0, 100)
    dest = users_folder(tmp_path / "mosaics")
    with pytest.raises(StorageError, match=rf"mosaics {REFUSED}"):
        mosaic_region(root, dest, **region_settings())
    assert everything(dest) == ["thesis.tex"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
