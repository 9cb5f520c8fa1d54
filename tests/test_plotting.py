"""Shared figure helpers: PNG saving, empty-panel messages, region titles, RGB band choice and
the percentile stretch.  Also the PNG check and figure capture the figure tests share."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from cloudfree import plotting
from cloudfree.plotting import (
    NAN_COLOUR,
    panel_message,
    region_names,
    rgb_bands,
    rgb_composite,
    save_figure,
    show_image,
    stretch,
    stretch_limits,
    with_region,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_side: int = 100) -> None:
    """``path`` is a readable PNG of a sensible size and no temporary file is left beside it."""
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side and max(img.shape[:2]) < 5000
    assert not list(path.parent.glob(f".{path.name}*")), "temporary file left behind"


def capture(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Figure]:
    """The figures ``module`` saves from now on (still written to their paths)."""
    figures: list[Figure] = []

    def keep(fig: Figure, path: str | Path) -> None:
        figures.append(fig)
        save_figure(fig, path)

    monkeypatch.setattr(module, "save_figure", keep)
    return figures


def assert_labelled(fig: Figure) -> None:
    """``fig`` has a title (its own or one per panel), every panel that plots values on axes
    names both axes, and every colour bar says what its colours are; pictures (panels
    without ticks) and panels that say why they are empty need neither."""
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert fig.get_suptitle() or all(ax.get_title() for ax in panels), "figure without a title"
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel(), "colour bar without a label"
        elif len(ax.get_xticks()) and len(ax.get_yticks()) and not ax.texts:
            assert ax.get_xlabel() and ax.get_ylabel(), f"panel {ax.get_title()!r} unlabelled"


def texts(fig: Figure) -> list[str]:
    """Every title, suptitle and panel text of ``fig``."""
    out = [fig.get_suptitle()]
    for ax in fig.axes:
        out += [ax.get_title()] + [t.get_text() for t in ax.texts]
    return [t for t in out if t]


def test_save_figure_writes_a_png_atomically(tmp_path: Path) -> None:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert_png(tmp_path / "f.png")
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_assert_labelled_finds_what_a_figure_lacks() -> None:
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [1, 0])
    with pytest.raises(AssertionError, match="without a title"):
        assert_labelled(fig)
    fig.suptitle("Errors")
    with pytest.raises(AssertionError, match="unlabelled"):
        assert_labelled(fig)
    ax.set_xlabel("step")
    ax.set_ylabel("MAE (reflectance)")
    fig.colorbar(ax.imshow(np.zeros((2, 2))), ax=ax)
    with pytest.raises(AssertionError, match="colour bar"):
        assert_labelled(fig)
    fig.axes[-1].set_ylabel("cloud fraction")
    assert_labelled(fig)
    picture = Figure()
    show_image(picture.subplots(), np.zeros((2, 2)), "2021-01-01")
    assert_labelled(picture)  # a titled picture needs no axis labels


def test_panel_message_and_titles() -> None:
    fig = Figure()
    ax = fig.subplots()
    panel_message(ax, "nothing to show")
    assert [t.get_text() for t in ax.texts] == ["nothing to show"]
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
    frame = pd.DataFrame({"region": ["a", "b", "a", None]})
    assert region_names(frame) == "a, b"
    assert region_names(frame.drop(columns="region")) == ""
    assert with_region("Clear dates", "a, b") == "Clear dates, a, b"
    assert with_region("Clear dates", "") == "Clear dates"


@pytest.mark.parametrize(
    ("bands", "count", "expected"),
    [
        (None, 13, ((3, 2, 1), "B04/B03/B02")),
        (("B02", "B03", "B04", "B08"), 4, ((2, 1, 0), "B04/B03/B02")),
        (("NDVI",), 1, ((0, 0, 0), "NDVI")),
        ((None, None), 2, ((0, 0, 0), "band 1")),
    ],
)
def test_rgb_bands(bands, count, expected) -> None:
    assert rgb_bands(bands, count) == expected


def test_rgb_composite_takes_the_bands_in_order() -> None:
    image = np.arange(4)[:, None, None] * np.ones((4, 2, 3))
    rgb = rgb_composite(image, (2, 1, 0))
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.float32
    assert rgb[0, 0].tolist() == [2, 1, 0]


def test_stretch_limits_and_stretch() -> None:
    rgb = np.linspace(0, 1, 101)[:, None].repeat(3, axis=1).reshape(101, 1, 3)
    lo, hi = stretch_limits(rgb)
    assert (lo, hi) == pytest.approx((0.02, 0.98))
    where = np.zeros((101, 1), bool)
    where[:51] = True
    assert stretch_limits(rgb, where) == pytest.approx((0.01, 0.49))
    assert stretch_limits(np.full((2, 2, 3), np.nan)) == (0.0, 0.3)
    flat_lo, flat_hi = stretch_limits(np.full((2, 2, 3), 0.2))
    assert flat_lo == pytest.approx(0.2) and flat_hi == pytest.approx(0.201)
    image = np.array([[[0.0, 0.5, 1.0], [0.25, np.nan, 0.25]]])
    shown = stretch(image, 0.0, 0.5)
    assert shown[0, 0].tolist() == [0.0, 1.0, 1.0]  # clipped to [0, 1]
    assert tuple(shown[0, 1]) == NAN_COLOUR  # a pixel with a non-finite band is grey


def test_show_image_passes_options_on() -> None:
    ax = Figure().subplots()
    image = show_image(ax, np.arange(6).reshape(2, 3), "count", vmin=0, vmax=10, cmap="viridis")
    assert ax.get_title() == "count" and image.get_clim() == (0, 10)
    assert image.get_cmap().name == "viridis" and image.get_interpolation() == "nearest"
    assert list(ax.get_xticks()) == []


def test_capture_keeps_the_saved_figures(monkeypatch, tmp_path: Path) -> None:
    figures = capture(monkeypatch, plotting)
    fig = Figure()
    fig.suptitle("top")
    panel_message(fig.subplots(), "empty")
    plotting.save_figure(fig, tmp_path / "c.png")
    assert figures == [fig] and texts(fig) == ["top", "empty"]
    assert_png(tmp_path / "c.png", min_side=50)
