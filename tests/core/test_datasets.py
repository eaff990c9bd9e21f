"""Data sets: toy samplers and their exact densities, the bundled digits and textures, user data,
and every bad input raising DatasetError that names the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ebm_studio.core import datasets as D
from ebm_studio.core.datasets import DatasetError

LOG_PROB_TOYS = ("8gaussians", "grid25", "rings", "checkerboard")


# --------------------------------------------------------------------------------------------
# Toys
# --------------------------------------------------------------------------------------------


def test_names():
    assert D.dataset_names() == [*D.TOY_NAMES, *D.IMAGE_NAMES]
    assert len(set(D.dataset_names())) == 13


@pytest.mark.parametrize("name", D.TOY_NAMES)
def test_toy_sampler(name):
    t = D.toy(name)
    x = t.sample(4000, seed=7)
    assert x.shape == (4000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    lo, hi = t.value_range
    assert lo <= float(x.min()) and float(x.max()) <= hi
    assert torch.equal(x, t.sample(4000, seed=7))
    assert not torch.equal(x, t.sample(4000, seed=8))
    # the training draw with a seeded generator is the same sampler
    assert torch.equal(t.batch(4000, torch.Generator().manual_seed(7)), x)
    # heldout(seed=s) must not replay the batch stream seeded with s
    h = t.heldout(100, seed=7)
    assert h.shape == (100, 2) and not torch.equal(h, t.sample(100, seed=7))
    assert torch.equal(h, t.heldout(100, seed=7))
    # spread: not collapsed to a point, and using the box (every toy reaches beyond radius 2)
    assert float(x.std(0).min()) > 0.5 and float(x.norm(dim=1).max()) > 2.0
    assert t.preview(16).shape == (16, 2) and t.preview(16).dtype == np.float32
    with pytest.raises(TypeError):
        len(t)
    assert bool(t)
    d = t.describe()
    assert json.loads(json.dumps(d)) == d and d["count"] is None and d["kind"] == "points"
    assert d["has_log_prob"] == (name in LOG_PROB_TOYS) == t.has_log_prob


def _grid(h: float, half: float = 4.5) -> tuple[torch.Tensor, int]:
    c = torch.arange(-half + h / 2, half, h, dtype=torch.float64)  # cell midpoints
    xx, yy = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1), len(c)


@pytest.mark.parametrize("name", LOG_PROB_TOYS)
def test_log_prob_normalised_and_matches_samples(name):
    t = D.toy(name)
    h = 0.02  # the midpoint rule is spectrally accurate for Gaussians: h = std/4 is plenty
    pts, m = _grid(h)
    p = torch.exp(t.log_prob(pts.float()).double()).reshape(m, m)
    total = float(p.sum()) * h * h
    assert abs(total - 1.0) < 2e-3, total
    # bin masses by quadrature (cells never straddle bins: 450 cells = 18 bins × 25) vs a histogram
    bins = 18
    mass = p.reshape(bins, m // bins, bins, m // bins).sum((1, 3)) * h * h
    n = 100_000
    x = t.sample(n, seed=3).double()
    box = [[-4.5, 4.5]] * 2
    counts, _, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=bins, range=box)
    freq = torch.from_numpy(counts) / n
    z = (freq - mass).abs() / torch.sqrt(mass.clamp_min(1e-9) / n)
    assert float(z[mass > 1e-4].max()) < 5.0
    assert float((freq - mass).abs().sum()) < 0.03


@pytest.mark.parametrize("name", ("8gaussians", "grid25"))
def test_mixture_energy_agrees(name):
    t = D.toy(name)
    e = t.energy()
    x = t.sample(500, seed=1)
    torch.testing.assert_close(t.log_prob(x), e.log_prob(x))
    k = {"8gaussians": 8, "grid25": 25}[name]
    assert t.modes.shape == (k, 2)
    np.testing.assert_allclose(np.sort(t.modes, 0), np.sort(e.means.numpy(), 0), atol=1e-6)
    # every mode is used about equally
    occupancy = torch.bincount(e.responsibilities(t.sample(20_000, seed=2)).argmax(1), minlength=k)
    assert float((occupancy / 20_000 - 1 / k).abs().max()) < 5 * math.sqrt((1 / k) / 20_000)
    # each point's offset from its nearest mode has the toy's std per coordinate
    nearest = torch.cdist(x.double(), torch.from_numpy(t.modes)).argmin(1)
    offset = x.double() - torch.from_numpy(t.modes)[nearest]
    std = {"8gaussians": 0.2, "grid25": 0.1}[name]
    assert abs(float(offset.std()) - std) < 0.1 * std


def test_log_prob_errors():
    with pytest.raises(DatasetError, match="moons"):
        D.toy("moons").log_prob(torch.zeros(3, 2))
    with pytest.raises(DatasetError, match="shape"):
        D.toy("rings").log_prob(torch.zeros(3, 3))
    assert D.toy("moons").energy() is None and D.toy("rings").energy() is None
    with pytest.raises(DatasetError, match="nope"):
        D.toy("nope")
    with pytest.raises(DatasetError, match="seed"):
        D.toy("moons").sample(3, seed="x")


# --------------------------------------------------------------------------------------------
# Bundled images
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return D.load_digits()


def test_digits(digits):
    assert len(digits) == 5000 and digits.kind == "images" and digits.event_shape == (1, 28, 28)
    x = digits.batch(256, torch.Generator().manual_seed(0))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0
    assert sorted(torch.bincount(digits.labels).tolist()) == [500] * 10
    d = digits.describe()
    assert json.loads(json.dumps(d)) == d
    assert d["count"] == 5000 and d["num_classes"] == 10 and d["shape"] == [1, 28, 28]
    assert d["source"] == "builtin" and d["heldout_count"] == 500  # no path of this machine
    assert digits.preview(8).shape == (8, 1, 28, 28)


def test_digits_heldout_never_in_batches(digits):
    train, held = set(digits.train_indices.tolist()), set(digits.heldout_indices.tolist())
    assert not train & held and len(train | held) == 5000 and len(held) == 500
    # identify images by content (all 5000 digits are distinct, so content is an identity)
    every = digits.items(torch.arange(5000))
    owner = {img.numpy().tobytes(): i for i, img in enumerate(every)}
    assert len(owner) == 5000
    g = torch.Generator().manual_seed(1)
    drawn = {owner[img.numpy().tobytes()] for _ in range(10) for img in digits.batch(1000, g)}
    assert drawn <= train and len(drawn) > 3000  # 10 000 draws reach most of the 4500
    held_drawn = [owner[img.numpy().tobytes()] for img in digits.heldout(10_000)]
    assert len(held_drawn) == 500 and set(held_drawn) == held  # capped at the split
    assert torch.equal(digits.heldout(50, seed=3), digits.heldout(50, seed=3))
    # the split's classes are roughly balanced (50 each expected)
    counts = torch.bincount(digits.labels[torch.as_tensor(digits.heldout_indices)], minlength=10)
    assert int(counts.min()) > 25


def test_digits_resized_and_rgb():
    d = D.load_digits(16, channels=3)
    x = d.batch(32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 3, 16, 16) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x[:, 0], x[:, 2])
    same = D.load_dataset("digits", image_size=32)
    assert same.event_shape == (1, 32, 32)


@pytest.mark.parametrize(
    "name,size", [("texture:brick", 16), ("texture:grass", 64), ("textures", 32)]
)
def test_textures(name, size):
    t = D.load_dataset(name, image_size=size)
    x = t.batch(10, torch.Generator().manual_seed(0))
    assert x.shape == (10, 1, size, size) and t.event_shape == (1, size, size)
    assert -1.0 <= float(x.min()) < float(x.max()) <= 1.0
    assert x.std() > 0.1  # real texture, not a blank
    assert t.heldout(4).shape == (4, 1, size, size)
    assert json.loads(json.dumps(t.describe()))["name"] == name


def test_texture_crops_come_from_their_rows():
    # pixel value = row // 2 identifies where a crop came from
    rows = np.repeat((np.arange(512) // 2).astype(np.uint8)[:, None], 512, 1)
    t = D.TextureDataset({"ramp": rows}, size=24)
    to_row = lambda x: torch.round((x[:, 0, :, 0] + 1) * 127.5).long() * 2  # noqa: E731
    train = to_row(t.batch(2000, torch.Generator().manual_seed(0)))
    held = to_row(t.heldout(500))
    assert int(train.max()) < t.split_row == 448 and int(held.min()) >= 448
    assert int(train[:, 0].min()) == 0 and int(train[:, -1].max()) >= 440  # spans the region
    assert torch.all(train[:, 1:] - train[:, :-1] >= 0)  # rows are contiguous, top to bottom
    assert D.load_textures("gravel", 20, channels=3).batch(2).shape == (2, 3, 20, 20)


@pytest.mark.parametrize("size", [15, 65])
def test_texture_size_limits(size):
    with pytest.raises(DatasetError, match="crop size"):
        D.load_textures("brick", size)


def test_resources_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv(D.RESOURCES_ENV, str(tmp_path))
    with pytest.raises(DatasetError, match="digits.npz"):
        D.load_digits()
    with pytest.raises(DatasetError, match="brick.png"):
        D.load_textures("brick")
    (tmp_path / "digits.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="digits.npz"):
        D.load_digits()
    np.savez(tmp_path / "digits.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.arange(3))
    assert D.load_digits(8).event_shape == (1, 8, 8)


# --------------------------------------------------------------------------------------------
# User images
# --------------------------------------------------------------------------------------------


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def test_grey_folder_crops_and_resizes(tmp_path):
    # wide image: black sides, a white centre square -> the centre crop is all white
    wide = np.zeros((20, 60), np.uint8)
    wide[:, 20:40] = 255
    _save(tmp_path / "wide.png", wide)
    half = np.zeros((64, 64), np.uint8)
    half[:, :32] = 255  # white left half
    _save(tmp_path / "half.bmp", half)
    _save(tmp_path / "dark.jpg", np.full((30, 30), 10))
    ds = D.load_image_folder(tmp_path, size=16)
    assert ds.event_shape == (1, 16, 16) and len(ds) == 3 and ds.labels is None
    x = ds.items(torch.arange(3))  # sorted by name: dark, half, wide
    assert float(x[0].max()) < -0.8
    assert float(x[1, 0, :, :6].min()) > 0.99 and float(x[1, 0, :, -6:].max()) < -0.99
    assert float(x[2].min()) > 0.99
    assert D.load_image_folder(tmp_path, size=16, channels=3).event_shape == (3, 16, 16)


def test_mixed_folder_becomes_rgb_with_class_labels(tmp_path):
    _save(tmp_path / "cats" / "a.png", np.full((40, 40, 3), (255, 0, 0)))
    _save(tmp_path / "cats" / "b.png", np.full((33, 33), 128))  # grey, other size
    _save(tmp_path / "dogs" / "c.jpeg", np.full((50, 40, 3), (0, 0, 255)))
    _save(tmp_path / "dogs" / "d.png", np.full((32, 32, 4), (0, 255, 0, 128)), "RGBA")
    ds = D.load_dataset(tmp_path, image_size=8)
    assert ds.event_shape == (3, 8, 8) and ds.classes == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 1, 1]
    x = ds.items(torch.arange(4)).mean((2, 3))
    torch.testing.assert_close(x[0], torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(x[1], torch.full((3,), 128 / 127.5 - 1))
    assert float(x[2, 2]) > 0.9 and float(x[2, :2].max()) < -0.9  # blue, JPEG-approximately
    torch.testing.assert_close(x[3], torch.tensor([-1.0, 1.0, -1.0]))  # alpha dropped
    grey = D.load_image_folder(tmp_path, size=8, channels=1)
    red_luma = round(0.299 * 255) / 127.5 - 1
    assert grey.event_shape == (1, 8, 8)
    assert abs(float(grey.items([0]).mean()) - red_luma) < 1e-6


def test_image_arrays(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (20, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    ds = D.load_image_array(tmp_path / "u8.npy")
    assert ds.event_shape == (1, 12, 12) and "uint8" in ds.normalisation
    torch.testing.assert_close(ds.items([3])[0, 0], torch.from_numpy(u8[3]).float() / 127.5 - 1)

    unit = rng.random((10, 8, 8, 3), dtype=np.float32)  # NHWC in [0, 1]
    np.savez(tmp_path / "unit.npz", images=unit, labels=np.arange(10) % 2)
    ds = D.load_image_array(tmp_path / "unit.npz", size=16)
    assert ds.event_shape == (3, 16, 16) and "[0, 1]" in ds.normalisation
    assert ds.labels.tolist() == [0, 1] * 5
    assert -1.0 <= float(ds.batch(5).min()) and float(ds.batch(5).max()) <= 1.0
    ds8 = D.load_image_array(tmp_path / "unit.npz")
    expected = torch.from_numpy(unit[0] * 2 - 1).permute(2, 0, 1)
    torch.testing.assert_close(ds8.items([0])[0], expected)

    signed = (rng.random((10, 3, 8, 8)) * 2 - 1).astype(np.float64)  # NCHW in [-1, 1]
    np.save(tmp_path / "signed.npy", signed)
    ds = D.load_dataset(tmp_path / "signed.npy")
    assert ds.kind == "images" and ds.event_shape == (3, 8, 8) and "[-1, 1]" in ds.normalisation
    torch.testing.assert_close(ds.items([1])[0], torch.from_numpy(signed[1]).float())


# --------------------------------------------------------------------------------------------
# User points
# --------------------------------------------------------------------------------------------


def test_points_files(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 2)) * [1.0, 3.0]
    (tmp_path / "p.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in pts))
    (tmp_path / "p.txt").write_text("\n".join(f"{a} \t{b}" for a, b in pts))
    np.save(tmp_path / "p.npy", pts)
    np.savez(tmp_path / "p.npz", other=np.zeros(3), points=pts)
    for name in ("p.csv", "p.txt", "p.npy", "p.npz"):
        ds = D.load_dataset(tmp_path / name)
        assert isinstance(ds, D.PointsDataset) and len(ds) == 100 and ds.kind == "points"
        torch.testing.assert_close(ds.items(torch.arange(100)), torch.from_numpy(pts).float())
        lo, hi = pts.min(), pts.max()
        margin = 0.1 * (hi - lo)
        np.testing.assert_allclose(ds.value_range, (lo - margin, hi + margin), rtol=1e-6)
        assert ds.describe()["source"].endswith(name)
    held = {tuple(p) for p in ds.heldout(1000).tolist()}
    drawn = {tuple(p) for p in ds.batch(2000, torch.Generator().manual_seed(0)).tolist()}
    assert len(held) == 10 and not held & drawn and len(drawn) == 90


# --------------------------------------------------------------------------------------------
# Bad inputs: DatasetError naming the file
# --------------------------------------------------------------------------------------------


def _write(path, what):
    if isinstance(what, bytes):
        path.write_bytes(what)
    elif isinstance(what, str):
        path.write_text(what)
    elif isinstance(what, dict):
        np.savez(path, **what)
    else:
        np.save(path, what, allow_pickle=True)
    return path


BAD_FILES = {
    "garbage.npy": b"\x93NUMPY garbage",
    "garbage.npz": b"PK\x03\x04 broken zip",
    "empty.npz": {},
    "objects.npy": np.array([{"a": 1}, None], dtype=object),
    "strings.npy": np.array([["a", "b"], ["c", "d"]]),
    "complex.npy": np.ones((5, 2), dtype=np.complex64),
    "nan_points.npy": np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]),
    "inf_images.npy": np.full((4, 8, 8), np.inf, dtype=np.float32),
    "three_cols.npy": np.zeros((10, 3)),
    "vector.npy": np.zeros(10),
    "five_d.npy": np.zeros((2, 2, 8, 8, 1)),
    "one_image.npy": np.zeros((1, 8, 8), np.uint8),
    "hot_floats.npy": np.full((4, 8, 8), 300.0),
    "negative_ints.npy": np.full((4, 8, 8), -5, dtype=np.int32),
    "bad_labels.npz": {"images": np.zeros((4, 8, 8), np.uint8), "labels": np.arange(3)},
    "three_cols.csv": "1,2,3\n4,5,6\n",
    "one_point.csv": "x,y\n1,2\n",
    "nan.csv": "1,2\nnan,3\n4,5\n",
    "words.csv": "x,y\n1,2\nhello,world\n",
    "binary.csv": b"\xff\xfe\x00\x01\x80",
    "nothing.csv": "# only a comment\n",
    "data.json": "{}",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files(tmp_path, name):
    path = _write(tmp_path / name, BAD_FILES[name])
    with pytest.raises(DatasetError) as info:
        D.load_dataset(path)
    assert name in str(info.value)
    if name in ("three_cols.npy", "vector.npy"):  # not taken for images of the wrong shape
        assert "points need shape (N, 2)" in str(info.value)


@pytest.mark.parametrize("name", ["objects.npy", "strings.npy", "complex.npy", "three_cols.csv"])
def test_bad_files_direct_loaders(tmp_path, name):
    path = _write(tmp_path / name, BAD_FILES[name])
    loader = D.load_points if name.endswith(".csv") else D.load_image_array
    with pytest.raises(DatasetError) as info:
        loader(path)
    assert name in str(info.value)


def test_bad_folders_and_paths(tmp_path):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    lonely = tmp_path / "lonely_folder"
    _save(lonely / "only.png", np.zeros((8, 8)))
    broken = tmp_path / "broken_folder"
    _save(broken / "good.png", np.zeros((8, 8)))
    (broken / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cases = [
        (lambda: D.load_image_folder(empty), "empty_folder"),
        (lambda: D.load_dataset(lonely), "lonely_folder"),
        (lambda: D.load_dataset(broken), "bad.png"),
        (lambda: D.load_dataset(lonely / "only.png"), "only.png"),
        (lambda: D.load_dataset(tmp_path / "missing.npy"), "missing.npy"),
        (lambda: D.load_image_folder(tmp_path / "missing_dir"), "missing_dir"),
        (lambda: D.load_image_array(tmp_path / "gone.npz"), "gone.npz"),
        (lambda: D.load_points(tmp_path / "gone.csv"), "gone.csv"),
        (lambda: D.load_dataset("not-a-dataset"), "not-a-dataset"),
        (lambda: D.load_textures("marble"), "marble"),
    ]
    for call, fragment in cases:
        with pytest.raises(DatasetError) as info:
            call()
        assert fragment in str(info.value)
    with pytest.raises(DatasetError, match="image size"):
        D.load_image_folder(broken, size=4)
    with pytest.raises(DatasetError, match="channels"):
        D.load_image_folder(broken, channels=2)


def test_a_csv_row_with_a_typo_is_an_error_naming_the_line_not_a_header(tmp_path):
    from ebm_studio.core.datasets import DatasetError, load_points

    bad = tmp_path / "t.csv"
    bad.write_text("1.0,2.O\n3,4\n5,6\n7,8\n")
    with pytest.raises(DatasetError, match="line 1"):
        load_points(bad)
    good = tmp_path / "h.csv"
    good.write_text("x,y\n1,2\n3,4\n")
    assert len(load_points(good)) == 2


def test_pipes_and_folders_are_refused_without_blocking(tmp_path):
    import os

    from ebm_studio.core.datasets import DatasetError, load_dataset

    if hasattr(os, "mkfifo"):
        for name in ("p.npy", "p.csv"):
            os.mkfifo(tmp_path / name)
            with pytest.raises(DatasetError, match="not a regular file"):
                load_dataset(tmp_path / name)


def test_checkerboard_exact_density_integrates_to_one_and_covers_its_samples():
    from ebm_studio.core.datasets import toy

    board = toy("checkerboard")
    assert board.has_log_prob
    pts = board.heldout(5000).double()
    lp = board.log_prob(pts)
    assert torch.isfinite(lp).all() and torch.allclose(lp, torch.full_like(lp, -np.log(18.0)))
    n = 801
    xs = torch.linspace(-4, 4, n, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    p = board.log_prob(torch.stack([gx.ravel(), gy.ravel()], 1)).exp()
    assert abs(float(p.sum()) * (8 / (n - 1)) ** 2 - 1.0) < 0.02
