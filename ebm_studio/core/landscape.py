"""2-D energy landscapes on a grid: energies, gradients, log Z by quadrature, NLL, KL, mode masses.

Everything here is for 2-D energies (input ``(N, 2)``). The density at temperature T is
``p_T(x) = exp(−U(x)) / Z_T`` with ``U(x) = E(x)/T`` (plus ``|x|²/(2σ_ref²)`` when a Gaussian
reference ``ref_sigma`` is given, as in the samplers), and

    log Z_T ≈ log Σ_cells exp(−U(x_c)) · ΔA        (midpoint rule, evaluated with logsumexp)

so only the *box* contributes: the box must cover the mass. The midpoint rule is spectrally accurate
for smooth densities: for a Gaussian of std σ and cell width h its relative error is about
``2·exp(−2π²σ²/h²)`` (≈ 5e-9 at h = σ), so the error is dominated by the mass *outside* the box.

Default bounds (documented choice):

- :func:`default_bounds` (data): the data's bounding box widened by ``margin`` (15 %) of its span on
  each side, the shorter side widened to at least half the longer one (square-ish, so a thin data
  set still gets a usable picture without wasting most cells on a forced square). For a few thousand
  samples the extreme points lie ~3.5σ out, so the box reaches ≳ 4.5σ beyond the outermost mode.
- :func:`mixture_bounds` (analytic Gaussians/mixtures): every component's mean ± 6 marginal
  standard deviations (√Σ_ii) along each axis; the mass outside is < 4e-9 per component, far below
  the 1e-3 relative accuracy promised for log Z on the default 256² grid (measured: ~5e-8).

Grid values are indexed ``[ix, iy]`` (x first), which is what ``pyqtgraph.ImageItem`` expects;
``values.reshape(n, n)`` of an evaluation over :meth:`Grid.points` gives that layout.
Results are plain numpy (float64) so the engine can hand them to the GUI as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ebm_studio.core.energies import Energy, GaussianEnergy, GaussianMixtureEnergy
from ebm_studio.core.errors import check_int_at_least, check_non_negative, check_positive
from ebm_studio.core.samplers import energy_and_grad

DEFAULT_GRID_N = 256
#: evaluation chunk: 16384 points of the 2→128³→1 MLP keep activations (~8 MiB each) cache-friendly
DEFAULT_BATCH = 16384
#: half-width, in component standard deviations, of :func:`mixture_bounds`
MIXTURE_N_STD = 6.0


def check_limits(name: str, lim) -> tuple[float, float]:
    """``lim`` as a finite pair (lo, hi) with lo < hi, else ``ValueError`` naming ``name``."""
    try:
        lo, hi = (float(v) for v in lim)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (lo, hi), got {lim!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be finite with lo < hi, got {lim!r}")
    return lo, hi


@dataclass(frozen=True)
class Grid:
    """An ``n × n`` grid of cells over the box ``xlim × ylim``; quadrature nodes: cell centres."""

    xlim: tuple[float, float]
    ylim: tuple[float, float]
    n: int = DEFAULT_GRID_N

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__ so equal grids compare (and hash) equal
        object.__setattr__(self, "xlim", check_limits("xlim", self.xlim))
        object.__setattr__(self, "ylim", check_limits("ylim", self.ylim))
        object.__setattr__(self, "n", check_int_at_least("n", self.n, 2))

    @property
    def dx(self) -> float:
        return (self.xlim[1] - self.xlim[0]) / self.n

    @property
    def dy(self) -> float:
        return (self.ylim[1] - self.ylim[0]) / self.n

    @property
    def cell_area(self) -> float:
        return self.dx * self.dy

    @property
    def xs(self) -> np.ndarray:
        """(n,) x coordinates of the cell centres."""
        return self.xlim[0] + (np.arange(self.n) + 0.5) * self.dx

    @property
    def ys(self) -> np.ndarray:
        """(n,) y coordinates of the cell centres."""
        return self.ylim[0] + (np.arange(self.n) + 0.5) * self.dy

    @property
    def rect(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the box: what ``ImageItem.setRect`` takes."""
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        return (x0, y0, x1 - x0, y1 - y0)

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y), each (n, n) and indexed ``[ix, iy]``."""
        return np.meshgrid(self.xs, self.ys, indexing="ij")

    def points(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """(n·n, 2) cell centres, x-major: ``values.reshape(n, n)[ix, iy]`` is cell (ix, iy)."""
        x, y = self.mesh()
        pts = np.stack([x.ravel(), y.ravel()], axis=1)
        return torch.as_tensor(pts, dtype=dtype, device=device)

    def with_n(self, n: int) -> "Grid":
        """The same box with another resolution (e.g. a coarse grid for gradient arrows)."""
        return Grid(self.xlim, self.ylim, n)


# --------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------


def default_bounds(
    points, margin: float = 0.15
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A square-ish box around 2-D ``points`` (N, 2): the bounding box plus ``margin``·span a side.

    The shorter side is widened (about its centre) to at least half the longer one. A degenerate
    set (one point, or all on a line) gets a span of at least 1 so the box is never empty.
    """
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 1:
        raise ValueError(f"points must have shape (N, 2) with N >= 1, got {p.shape}")
    p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError("points contains non-finite values")
    margin = check_non_negative("margin", margin)
    lo, hi = p.min(0), p.max(0)
    centre = 0.5 * (lo + hi)
    half = 0.5 * (hi - lo) * (1.0 + 2.0 * margin)
    top = max(float(half.max()), 0.5)
    half = np.maximum(half, 0.5 * top)
    return (
        (float(centre[0] - half[0]), float(centre[0] + half[0])),
        (float(centre[1] - half[1]), float(centre[1] + half[1])),
    )


def mixture_bounds(
    energy: GaussianMixtureEnergy | GaussianEnergy, n_std: float = MIXTURE_N_STD
) -> tuple[tuple[float, float], tuple[float, float]]:
    """A box holding every component's mean ± ``n_std`` of its std per axis (2-D analytic)."""
    n_std = check_positive("n_std", n_std)
    if isinstance(energy, GaussianMixtureEnergy):
        means, covs = energy.means, energy.covs
    elif isinstance(energy, GaussianEnergy):
        means, covs = energy.mean[None], energy.cov[None]
    else:
        raise ValueError(
            "mixture_bounds needs a GaussianEnergy or GaussianMixtureEnergy, "
            f"got {type(energy).__name__}"
        )
    means = means.detach().double().cpu().numpy()
    covs = covs.detach().double().cpu().numpy()
    if means.shape[1] != 2:
        raise ValueError(f"mixture_bounds needs a 2-D energy, got dimension {means.shape[1]}")
    # per-axis std is enough for an axis-aligned box: the marginal of x_i has variance Σ_ii
    stds = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    lo = (means - n_std * stds).min(0)
    hi = (means + n_std * stds).max(0)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


# --------------------------------------------------------------------------------------------
# Evaluation on the grid
# --------------------------------------------------------------------------------------------


def module_device_dtype(energy: Energy, device=None) -> tuple[torch.device, torch.dtype]:
    """Where and in what precision to feed ``energy``: its own parameters' unless told otherwise."""
    for t in list(energy.parameters()) + list(energy.buffers()):
        if t.is_floating_point():
            return (torch.device(device) if device is not None else t.device), t.dtype
    return torch.device(device or "cpu"), torch.float32


class eval_mode:
    """Evaluate in eval mode (no spectral-norm power iterations, no dropout) and restore after."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> None:
        self.module.eval()

    def __exit__(self, *exc) -> None:
        self.module.train(self.was_training)


def _check_finite_values(what: str, values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise FloatingPointError(f"{what} is non-finite at {bad} of {values.size} grid cells")


def evaluate_energy(
    energy: Energy, grid: Grid, batch: int = DEFAULT_BATCH, device=None
) -> np.ndarray:
    """E(x) at every cell centre: numpy ``(n, n)`` float64 indexed ``[ix, iy]`` (raw E, not /T)."""
    batch = check_int_at_least("batch", batch, 1)
    dev, dtype = module_device_dtype(energy, device)
    pts = grid.points(dtype=dtype, device=dev)
    energy.check_input(pts)
    out = []
    with torch.no_grad(), eval_mode(energy):
        for chunk in pts.split(batch):
            out.append(energy(chunk).double().cpu())
    values = torch.cat(out).numpy().reshape(grid.n, grid.n)
    _check_finite_values("the energy", values)
    return values


def energy_gradient(energy: Energy, grid_coarse: Grid, device=None) -> np.ndarray:
    """∇ₓE at every cell centre of (usually a coarse) grid: numpy ``(n, n, 2)`` float64."""
    dev, dtype = module_device_dtype(energy, device)
    pts = grid_coarse.points(dtype=dtype, device=dev)
    energy.check_input(pts)
    with eval_mode(energy):
        _, g = energy_and_grad(energy, pts)
    grad = g.double().cpu().numpy().reshape(grid_coarse.n, grid_coarse.n, 2)
    _check_finite_values("the energy gradient", grad)
    return grad


def _check_values(energy_values: np.ndarray, grid: Grid) -> np.ndarray:
    e = np.asarray(energy_values, dtype=np.float64)
    if e.shape != (grid.n, grid.n):
        raise ValueError(f"energy_values must have shape ({grid.n}, {grid.n}), got {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("energy_values contains non-finite values")
    return e


def _potential(
    e: np.ndarray, grid: Grid, temperature: float, ref_sigma: float | None
) -> np.ndarray:
    u = e / check_positive("temperature", temperature)
    if ref_sigma is not None:
        x, y = grid.mesh()
        u = u + (x**2 + y**2) / (2.0 * check_positive("ref_sigma", ref_sigma) ** 2)
    return u


def _logsumexp(a: np.ndarray) -> float:
    m = float(a.max())
    return m + math.log(float(np.exp(a - m).sum()))


def log_z(
    energy_values: np.ndarray,
    grid: Grid,
    temperature: float = 1.0,
    *,
    ref_sigma: float | None = None,
) -> float:
    """log ∫_box exp(−E(x)/T) dx by the midpoint rule (logsumexp-stable)."""
    u = _potential(_check_values(energy_values, grid), grid, temperature, ref_sigma)
    return _logsumexp(-u) + math.log(grid.cell_area)


def log_density(
    energy_values: np.ndarray,
    grid: Grid,
    temperature: float = 1.0,
    *,
    ref_sigma: float | None = None,
) -> np.ndarray:
    """log p_T on the grid, ``−E/T − log Z_T``: ``Σ exp(log p)·ΔA = 1`` up to rounding."""
    u = _potential(_check_values(energy_values, grid), grid, temperature, ref_sigma)
    return -u - (_logsumexp(-u) + math.log(grid.cell_area))


def nll(
    energy: Energy,
    x,
    log_z_value: float,
    temperature: float = 1.0,
    *,
    ref_sigma: float | None = None,
    batch: int = DEFAULT_BATCH,
) -> float:
    """Mean negative log-likelihood −log p_T(x) of held-out points ``x`` (N, 2), in nats.

    ``log_z_value`` is the (quadrature) log Z_T of the same energy at the same temperature.
    """
    temperature = check_positive("temperature", temperature)
    dev, dtype = module_device_dtype(energy, None)
    xt = torch.as_tensor(x).to(dev, dtype)
    if xt.ndim != 2 or xt.shape[0] < 1:
        raise ValueError(f"x must have shape (N, 2) with N >= 1, got {tuple(xt.shape)}")
    energy.check_input(xt)
    with torch.no_grad(), eval_mode(energy):
        e = torch.cat([energy(c).double() for c in xt.split(batch)])
    u = e / temperature
    if ref_sigma is not None:
        u = u + (xt.double() ** 2).sum(-1) / (2.0 * check_positive("ref_sigma", ref_sigma) ** 2)
    if not torch.isfinite(u).all():
        raise FloatingPointError("the energy is non-finite at some of the points")
    return float(u.mean()) + float(log_z_value)


def kl_divergence(log_p: np.ndarray, log_q: np.ndarray, grid: Grid) -> float:
    """KL(p‖q) = Σ p (log p − log q) ΔA by quadrature, p and q normalised log densities on ``grid``.

    Both sum to one on the grid, so this is a discrete KL and ≥ 0 up to rounding, which is clipped.
    """
    lp = np.asarray(log_p, dtype=np.float64)
    lq = np.asarray(log_q, dtype=np.float64)
    if lp.shape != (grid.n, grid.n) or lq.shape != lp.shape:
        raise ValueError(
            f"log_p and log_q must have shape ({grid.n}, {grid.n}), got {lp.shape} and {lq.shape}"
        )
    p = np.exp(lp)
    # cells where p underflows to 0 contribute 0 (0·log 0 = 0), whatever q is there
    with np.errstate(invalid="ignore"):  # lp − lq is inf where q = 0 (a density with holes)
        terms = np.where(p > 0, p * (lp - lq), 0.0)
    kl = float(terms.sum()) * grid.cell_area
    if math.isnan(kl):
        raise ValueError("log_p or log_q contains NaN")
    return max(kl, 0.0)


def mode_masses(log_p_grid: np.ndarray, grid: Grid, modes: np.ndarray) -> np.ndarray:
    """(M,) probability mass of the cells nearest to each mode centre (M, 2); sums to ~1."""
    lp = np.asarray(log_p_grid, dtype=np.float64)
    if lp.shape != (grid.n, grid.n):
        raise ValueError(f"log_p_grid must have shape ({grid.n}, {grid.n}), got {lp.shape}")
    m = np.asarray(modes, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 2 or m.shape[0] < 1:
        raise ValueError(f"modes must have shape (M, 2) with M >= 1, got {m.shape}")
    x, y = grid.mesh()
    d2 = (x.ravel()[:, None] - m[None, :, 0]) ** 2 + (y.ravel()[:, None] - m[None, :, 1]) ** 2
    nearest = d2.argmin(1)
    mass = np.exp(lp.ravel()) * grid.cell_area
    return np.bincount(nearest, weights=mass, minlength=m.shape[0])


# --------------------------------------------------------------------------------------------
# Everything the landscape view draws
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Landscape:
    """A landscape for the GUI, plain numpy: E and log p_T on ``grid``, ∇E on ``grad_grid``.

    Frozen: it crosses to the GUI thread inside a ``LandscapeResult``; arrays compare by identity."""

    grid: Grid
    temperature: float
    energy: np.ndarray  # (n, n) raw E, indexed [ix, iy]
    log_z: float  # quadrature log Z_T over the box
    log_density: np.ndarray  # (n, n) log p_T
    grad: np.ndarray | None = None  # (m, m, 2) ∇E on grad_grid
    grad_grid: Grid | None = None


def compute_landscape(
    energy: Energy,
    grid: Grid,
    temperature: float = 1.0,
    grad_n: int | None = 24,
    *,
    ref_sigma: float | None = None,
    device=None,
) -> Landscape:
    """E on ``grid``, normalised at ``temperature``; ∇E on a ``grad_n``² grid (None: skip it)."""
    temperature = check_positive("temperature", temperature)
    e = evaluate_energy(energy, grid, device=device)
    u = _potential(e, grid, temperature, ref_sigma)
    lz = _logsumexp(-u) + math.log(grid.cell_area)
    grad = grad_grid = None
    if grad_n is not None:
        grad_grid = grid.with_n(check_int_at_least("grad_n", grad_n, 2))
        grad = energy_gradient(energy, grad_grid, device=device)
    return Landscape(grid, temperature, e, lz, -u - lz, grad, grad_grid)


def compare_to_truth(
    model_energy_values: np.ndarray,
    true_log_density: np.ndarray,
    grid: Grid,
    temperature: float = 1.0,
    *,
    ref_sigma: float | None = None,
) -> dict:
    """KL(p_data‖p_θ) (mode covering) and KL(p_θ‖p_data) (mode seeking), both by quadrature.

    ``true_log_density`` is the data density's normalised log density on ``grid`` (for an analytic
    data set: :func:`log_density` of its energy). Also returns the model's quadrature log Z.
    """
    lq = log_density(model_energy_values, grid, temperature, ref_sigma=ref_sigma)
    lz = log_z(model_energy_values, grid, temperature, ref_sigma=ref_sigma)
    lp = np.asarray(true_log_density, dtype=np.float64)
    return {
        "kl_data_model": kl_divergence(lp, lq, grid),
        "kl_model_data": kl_divergence(lq, lp, grid),
        "log_z_model": lz,
    }
