"""Exports of recorded trajectories: GIF/APNG frames and sizes, PNG strips, .npz, cancelling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ebm_studio.core.export import (
    ExportCancelled,
    export_apng,
    export_gif,
    export_npz,
    export_png_strip,
    render_points,
)
from ebm_studio.core.trajectory import TrajectoryRecorder


def image_recording(n_steps: int = 12, n: int = 9, shape=(1, 8, 8)) -> TrajectoryRecorder:
    rng = np.random.default_rng(0)
    rec = TrajectoryRecorder()
    for s in range(n_steps):
        rec.record(s, rng.uniform(-1, 1, (n, *shape)).astype(np.float32), rng.normal(size=n))
    return rec


def point_recording(n_steps: int = 10, n: int = 500) -> TrajectoryRecorder:
    rng = np.random.default_rng(1)
    rec = TrajectoryRecorder()
    x = rng.normal(size=(n, 2)).astype(np.float32)
    for s in range(n_steps):
        x = x + 0.1 * rng.normal(size=x.shape).astype(np.float32)
        rec.record(s, x)
    return rec


def frames_of(path) -> tuple[int, tuple[int, int]]:
    with Image.open(path) as im:
        return im.n_frames, im.size


# 9 chains of 8×8 in a 3×3 grid with 1-px padding: 3·9 + 1 = 28 px
GRID = 28


@pytest.mark.parametrize("export", [export_gif, export_apng])
def test_animation_of_grid_and_of_one_chain(tmp_path, export):
    rec = image_recording()
    calls = []
    out = export(
        rec, tmp_path / "grid.img", fps=20, scale=2, progress=lambda d, t: calls.append((d, t)),
        labels=False,
    )
    assert frames_of(out) == (12, (2 * GRID, 2 * GRID))
    assert calls[-1] == (13, 13) and len(calls) == 13
    out = export(rec, tmp_path / "one.img", steps=[0, 3, 7, 11], chain=4, scale=3, labels=False)
    assert frames_of(out) == (4, (24, 24))
    out = export(rec, tmp_path / "auto.img", steps=[2, 5], labels=False)  # auto scale: 8 px → 200 px
    assert frames_of(out) == (2, (GRID * 8, GRID * 8))
    with Image.open(out) as im:
        assert im.info.get("duration") == 100  # 10 fps
        assert im.info.get("loop") == 0


def test_animation_colour_and_points(tmp_path):
    rgb = image_recording(n_steps=5, n=4, shape=(3, 6, 6))
    assert frames_of(export_apng(rgb, tmp_path / "rgb.png", scale=1, labels=False)) == (5, (15, 15))
    pts = point_recording()
    out = export_gif(pts, tmp_path / "pts.gif", size=128, labels=False)
    assert frames_of(out) == (10, (128, 128))
    out = export_apng(pts, tmp_path / "pts1.png", size=64, chain=7, steps=range(0, 10, 3), labels=False)
    assert frames_of(out) == (4, (64, 64))
    with Image.open(out) as im:
        im.seek(3)
        arr = np.asarray(im.convert("RGB"))
    assert ((arr[..., 0] > 200) & (arr[..., 1] < 100)).any()  # the red highlighted particle


def test_render_points_density():
    pts = np.array([[0.0, 0.0]] * 50 + [[0.9, 0.9]], np.float32)
    img = render_points(pts, size=32, xlim=(-1, 1), ylim=(-1, 1))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    # (0, 0) falls in bin (16, 16): row 31 - 16 from the top, since y grows upwards
    assert img[15, 16].max() == 255  # the dense bin is the brightest
    assert img[1, 30].max() >= 110  # a single point is still visible
    hl = render_points(pts, size=32, xlim=(-1, 1), ylim=(-1, 1), highlight=pts[-1:])
    assert tuple(hl[1, 30]) == (255, 60, 40)  # drawn on the same pixel as its density bin
    assert img[30, 1].max() < 50  # empty: background
    with pytest.raises(ValueError, match="points"):
        render_points(np.zeros((4, 3)))


def test_png_strip_size(tmp_path):
    rec = image_recording()
    out = export_png_strip(rec, tmp_path / "strip.png", [0, 4, 8], scale=1, pad=2, labels=False)
    with Image.open(out) as im:
        assert im.size == (3 * GRID + 4 * 2, GRID + 2 * 2) and im.mode == "L"
    out = export_png_strip(point_recording(), tmp_path / "pstrip.png", [1, 2], size=40, pad=0, labels=False)
    with Image.open(out) as im:
        assert im.size == (80, 40) and im.mode == "RGB"


def test_npz_export_reloads(tmp_path):
    rec = point_recording()
    out = export_npz(rec, tmp_path / "run.npz")
    with np.load(out) as z:
        np.testing.assert_array_equal(z["states"][3], rec.get(3).state)
    assert TrajectoryRecorder.load_npz(out).steps.tolist() == rec.steps.tolist()


@pytest.mark.parametrize("export", [export_gif, export_apng, export_png_strip, export_npz])
def test_cancel_leaves_no_file(tmp_path, export):
    rec = image_recording(n_steps=30)
    seen = []

    def cancel_after_three() -> bool:
        seen.append(1)
        return len(seen) > 3

    target = tmp_path / "out.bin"
    with pytest.raises(ExportCancelled):
        export(rec, target, should_cancel=cancel_after_three)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file
    # an existing file is left untouched by a cancelled export
    target.write_bytes(b"old")
    seen.clear()
    with pytest.raises(ExportCancelled):
        export(rec, target, should_cancel=cancel_after_three)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_bad_export_arguments(tmp_path):
    rec = image_recording(n_steps=3)
    with pytest.raises(ValueError, match="fps"):
        export_gif(rec, tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="chain"):
        export_gif(rec, tmp_path / "a.gif", chain=9)
    with pytest.raises(ValueError, match="scale"):
        export_apng(rec, tmp_path / "a.png", scale=0)
    with pytest.raises(ValueError, match="empty"):
        export_gif(TrajectoryRecorder(), tmp_path / "a.gif")
    assert list(tmp_path.iterdir()) == []


def test_exports_are_labelled_by_default_with_step_energy_and_axes(tmp_path):
    from ebm_studio.core.export import LABEL_LINE, frame_caption

    rec = image_recording()
    out = export_gif(rec, tmp_path / "labelled.gif", scale=8, steps=[2, 9])
    with Image.open(out) as im:
        assert im.size == (GRID * 8, GRID * 8 + LABEL_LINE + 3)  # one caption line under the grid
        first = np.asarray(im.convert("L"))[GRID * 8:].copy()
        im.seek(1)
        second = np.asarray(im.convert("L"))[GRID * 8:]
    assert (first > 200).any()  # text is drawn in the band
    assert not np.array_equal(first, second)  # and it says which step
    assert frame_caption(1200, np.array([-3.0, -4.0]), None) == "step 1,200 · mean E -3.5"
    assert frame_caption(7, np.array([1.0, 2.0]), chain=1) == "step 7 · E 2"
    assert frame_caption(7, np.array([np.nan]), None) == "step 7"
    pts = export_png_strip(point_recording(), tmp_path / "p.png", [1, 2], size=160, pad=0)
    with Image.open(pts) as im:
        assert im.size == (320, 160 + 2 * LABEL_LINE + 3)  # step and energy, then the axes
