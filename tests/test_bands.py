"""Tests of cloudfree.bands: band lookup, the cloud-mask tests and reflectance to DN."""

import numpy as np
import pytest

from cloudfree.bands import (
    CLEAR,
    CLOUD,
    MASK_CLASSES,
    MASK_NODATA,
    S2_L1C_BANDS,
    SHADOW,
    THIN_CLOUD,
    band_index,
    clear_pixels,
    cloudy,
    to_dn,
)


def test_band_index():
    assert band_index("B01") == 0 and band_index("B8A") == 8 and band_index("B12") == 12
    assert band_index("B03", ("B02", "B03")) == 1
    with pytest.raises(KeyError, match=r"unknown band 'B13'; known bands: B01, B02"):
        band_index("B13")
    assert len(S2_L1C_BANDS) == len(set(S2_L1C_BANDS)) == 13


def test_cloudy_is_cloud_thin_cloud_or_shadow():
    mask = np.array([CLEAR, CLOUD, THIN_CLOUD, SHADOW, MASK_NODATA], np.uint8)
    assert cloudy(mask).tolist() == [False, True, True, True, False]
    assert sorted(MASK_CLASSES.values()) == [CLEAR, CLOUD, THIN_CLOUD, SHADOW]


def test_clear_pixels_need_data_in_some_band_and_a_clear_mask():
    s2 = np.array([[[[0, 3, 0, 5]], [[0, 0, 4, 5]]]], np.uint16)  # (1, 2, 1, 4)
    mask = np.array([[[CLEAR, CLEAR, CLEAR, CLOUD]]], np.uint8)
    assert clear_pixels(s2, mask).tolist() == [[[False, True, True, False]]]
    assert clear_pixels(s2, mask, nodata=3).tolist() == [[[True, True, True, False]]]
    assert not clear_pixels(s2, np.full_like(mask, MASK_NODATA)).any()


def test_to_dn_range():
    dn = to_dn(np.array([-0.1, 0.0, 0.00004, 0.00005, 0.1234, 7.0, np.nan]))
    assert dn.dtype == np.uint16
    # 0 stays for nodata: the darkest valid DN is 1; NaN becomes 1 too (callers mark nodata)
    assert dn.tolist() == [1, 1, 1, 1, 1234, 65535, 1]
    assert to_dn(np.array([0.00016, 0.00024])).tolist() == [2, 2]  # the nearest DN
