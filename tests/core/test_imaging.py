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


def test_the_histogram_matches_numpy_in_a_box_of_any_size():
    rng = np.random.default_rng(3)
    pts = rng.normal(0.4, 1.5, (20000, 2)).astype(np.float32)  # frames are float32
    xlim, ylim = (-1.3, 2.7), (-2.9, 3.1)
    expected, _, _ = np.histogram2d(pts[:, 0].astype(np.float64), pts[:, 1].astype(np.float64),
                                    bins=100, range=[xlim, ylim])
    np.testing.assert_array_equal(histogram2d(pts, xlim, ylim, 100), expected)


def test_points_just_outside_the_box_are_left_out():
    hi = 2.7
    pts = np.array([[np.nextafter(hi, np.inf), 0.0], [hi, 0.0], [0.0, np.nextafter(-1.0, -np.inf)]])
    h = histogram2d(pts, (-1.0, hi), (-1.0, 1.0), 10)
    assert h.sum() == 1 and h[-1].sum() == 1


def test_an_infinite_box_is_refused_as_numpy_refuses_it():
    with pytest.raises(ValueError):
        histogram2d(np.zeros((3, 2)), (-np.inf, 1.0), (0.0, 1.0), 4)


def test_a_histogram_of_a_box_without_width_falls_back_to_numpy():
    pts = np.array([[1.0, 1.0], [1.0, 2.0]])
    expected, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=4, range=[(1.0, 1.0), (0.0, 4.0)])
    np.testing.assert_array_equal(histogram2d(pts, (1.0, 1.0), (0.0, 4.0), 4), expected)
