"""Image and histogram helpers (``core/imaging.py``) against numpy's own."""

from __future__ import annotations

import numpy as np
import pytest

from ebm_studio.core.imaging import histogram2d


@pytest.mark.parametrize("bins", [1, 7, 256])
def test_the_histogram_matches_numpys_bins(bins):
    rng = np.random.default_rng(bins)
    pts = rng.normal(0, 2, (5000, 2))
    # points on the edges, outside the box, and not numbers
    pts[:6] = [[-4, -4], [4, 4], [4, -4], [4.5, 0], [0, -4.01], [np.nan, 0]]
    xlim, ylim = (-4.0, 4.0), (-4.0, 4.0)
    expected, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=[xlim, ylim])
    got = histogram2d(pts, xlim, ylim, bins)
    assert got.dtype == np.float32 and got.shape == (bins, bins)
    np.testing.assert_array_equal(got, expected)


def test_a_histogram_of_a_box_without_width_falls_back_to_numpy():
    pts = np.array([[1.0, 1.0], [1.0, 2.0]])
    expected, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=4, range=[(1.0, 1.0), (0.0, 4.0)])
    np.testing.assert_array_equal(histogram2d(pts, (1.0, 1.0), (0.0, 4.0), 4), expected)
