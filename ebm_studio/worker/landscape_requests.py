"""Engine-side handlers of the landscape view's commands (see :mod:`ebm_studio.worker.api`).

Each handler takes the engine and its command, and runs in the engine thread between steps, so
none of them races a running step. They answer with typed events (``Engine.event``) or through the
engine's own signals (``landscape_ready``, ``model_changed``, ``job_state``). A bad request (a
checkpoint that is not 2-D, a file that is not points, fewer than two drawn points) changes nothing
and answers :class:`~ebm_studio.worker.api.RequestRefused` with a message saying why.

- :func:`request_landscape`, :func:`set_view_spec`: remember the view's grid and display spec
  (so a training run's refreshes arrive rendered for the view) and compute a landscape now.
- :func:`drop_chains`: add chains at a clicked point to the running sampler (or start one).
- :func:`compose` / :func:`set_weights` / :func:`uncompose`: show ``w₁E₁ + w₂E₂`` (a product of
  experts) as the current model, change the weights live, and go back to the model before it.
- :func:`load_points_file`, :func:`train_on_points`: drawn data in and out of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebm_studio.core.checkpoint import CheckpointError, load_checkpoint
from ebm_studio.core.config import preset_2d
from ebm_studio.core.datasets import DatasetError, PointsDataset, load_points, toy
from ebm_studio.core.energies import (
    BananaEnergy,
    DoubleWellEnergy,
    Energy,
    GaussianEnergy,
    GaussianReference,
    SumEnergy,
    eight_gaussians_energy,
)
from ebm_studio.worker.jobs.sample_job import SampleJob
from ebm_studio.worker.api import (
    ANALYTIC_LABELS,
    MAX_DRAWN,
    ChainsAdded,
    Compose,
    Composed,
    CompositionInfo,
    ComputeLandscape,
    DropChains,
    LoadPointsFile,
    ModelInfoReply,
    NotTwoD,
    PointsLoaded,
    RequestModelInfo,
    RequestRefused,
    SetComposeWeights,
    SetLandscapeView,
    TrainingOnPoints,
    TrainOnPoints,
    Uncompose,
    Uncomposed,
    WeightsChanged,
)
from ebm_studio.core.model import ModelState
from ebm_studio.worker.requests import JobRequest

ANALYTIC_BOX = (-4.0, 4.0)
#: how often a run on drawn points refreshes the landscape (steps)
DRAWN_LANDSCAPE_EVERY = 25


def _refuse(engine, request: str, message: str) -> None:
    """A request that cannot be served: the view shows ``message``; nothing changed."""
    engine.emit_event(RequestRefused(request, message))


def _training_running(engine) -> bool:
    return engine.slots["training"].job is not None


def _is_2d(model: ModelState) -> bool:
    return model.kind == "points" and tuple(model.event_shape) == (2,)


# --------------------------------------------------------------------------------------------
# Landscape
# --------------------------------------------------------------------------------------------


def reply_model_info(engine, cmd: RequestModelInfo | None = None) -> None:
    """Tell the view which model is current: a panel built after the engine's start-up
    ``model_changed`` missed it (that signal reaches only the receivers connected at the time)."""
    comp = active_composition(engine)
    engine.emit_event(ModelInfoReply(engine.describe_model(composition=None if comp is None else comp.info())))



def request_landscape(engine, cmd: ComputeLandscape) -> None:
    """Store the view's grid (``n``, ``grad_n``, ``xlim``/``ylim``; None = the data box) and
    display spec (``view``) for later refreshes, then compute a landscape of the current model."""
    params = cmd.params()
    try:
        engine.landscape.set_view_params(params)
    except ValueError as exc:
        _refuse(engine, "landscape", str(exc))
        return
    if not _is_2d(engine.model):
        engine.emit_event(NotTwoD(engine.model.name, tuple(engine.model.event_shape)))
        return
    engine.compute_landscape({"request_id": params.get("request_id")})


def set_view_spec(engine, cmd: SetLandscapeView) -> None:
    """Remember the view's display spec (temperature, quantity, contours…) for later refreshes,
    which then arrive with the view's picture already rendered (see ``landscape_render``)."""
    try:
        engine.landscape.set_view_params({"view": cmd.view})
    except ValueError as exc:
        _refuse(engine, "landscape", str(exc))


# --------------------------------------------------------------------------------------------
# Click to drop chains
# --------------------------------------------------------------------------------------------


def drop_chains(engine, cmd: DropChains) -> None:
    """Add chains at ``points`` (k, 2) to the running sampler; with no job, start the viewer's
    chains from them. A training or fitting job is left alone (its chains are not the viewer's)."""
    pts = np.asarray(cmd.points, dtype=np.float32)
    if not _is_2d(engine.model):
        _refuse(engine, "drop", "Chains can be dropped on 2-D models only.")
        return
    if pts.ndim != 2 or pts.shape[1:] != (2,) or pts.shape[0] < 1 or not np.isfinite(pts).all():
        _refuse(engine, "drop", f"chains to drop must be finite (k, 2) points, got {pts.shape}")
        return
    job = engine.slots["viewer"].job
    if job is None:
        engine.live.update(paused=False)
        engine.start_job(JobRequest("sample", {}, init_state=pts, purpose="viewer"))
        engine.emit_event(ChainsAdded(int(pts.shape[0]), int(pts.shape[0])))
        return
    if not isinstance(job, SampleJob):
        _refuse(engine, "drop",
                f"A {job.kind} job is running; chains can be dropped into the viewer's chains only "
                "(stop it, or wait until it ends).")
        return
    try:
        n = job.add_chains(pts)
    except ValueError as exc:
        _refuse(engine, "drop", str(exc))
        return
    engine.show_change()  # at once, also while paused
    engine.emit_event(ChainsAdded(int(pts.shape[0]), int(n)))


# --------------------------------------------------------------------------------------------
# Composition: w₁E₁ + w₂E₂
# --------------------------------------------------------------------------------------------


@dataclass
class Composition:
    """What the engine shows while a composition is the current model, and what to go back to."""

    energy: SumEnergy
    base: ModelState
    trainer: object | None
    labels: list[str]

    def info(self) -> CompositionInfo:
        """Its terms for the GUI, at the current weights."""
        return CompositionInfo(tuple(self.labels), tuple(float(w) for w in self.energy.weights))


def active_composition(engine) -> Composition | None:
    """The composition the engine shows now (None once another model replaced it)."""
    comp = engine.composition
    if comp is not None and engine.model.energy is comp.energy:
        return comp
    return None


def _base(engine) -> tuple[ModelState, object | None]:
    comp = active_composition(engine)
    return (comp.base, comp.trainer) if comp is not None else (engine.model, engine.trainer)


def _with_reference(energy: Energy, ref_sigma: float | None) -> Energy:
    # a model trained with a Gaussian reference q means exp(−E)·q: compose that whole density
    if ref_sigma is None:
        return energy
    return SumEnergy([energy, GaussianReference(ref_sigma)], [1.0, 1.0])


def analytic_energy(key: str) -> Energy:
    if key == "8gaussians":
        return eight_gaussians_energy()
    if key == "grid25":
        return toy("grid25").energy()
    if key == "banana":
        return BananaEnergy()
    if key == "double_well":
        return DoubleWellEnergy()
    if key == "gaussian":
        return GaussianEnergy([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    raise ValueError(f"unknown analytic energy {key!r} (known: {', '.join(ANALYTIC_LABELS)})")


def _term(spec: dict, base: ModelState, engine) -> tuple[Energy, str, tuple[float, float]]:
    """(energy, label, value range) of one composition term."""
    source = spec.get("source")
    if source == "current":
        if not _is_2d(base):
            raise ValueError(f"the current model ({base.name}) is not a 2-D energy: its samples have "
                             f"shape {tuple(base.event_shape)}")
        return _with_reference(base.energy, base.ref_sigma), base.name, tuple(base.value_range)
    if source == "analytic":
        key = str(spec.get("name", ""))
        return analytic_energy(key).to(engine.device), ANALYTIC_LABELS.get(key, key), ANALYTIC_BOX
    if source == "checkpoint":
        path = str(spec.get("path", ""))
        ckpt = load_checkpoint(path)  # CheckpointError with the file's name and why
        energy = ckpt.build_energy(engine.device)
        shape = tuple(energy.event_shape)
        if shape != (2,):
            raise ValueError(f"{Path(path).name} is not a 2-D energy: its samples have shape "
                             f"{shape}; only 2-D energies can be composed here")
        vr = ckpt.data.get("value_range") or ANALYTIC_BOX
        energy.eval()
        return (_with_reference(energy, ckpt.sampler.get("ref_sigma")), Path(path).stem,
                (float(vr[0]), float(vr[1])))
    raise ValueError(f"a composition term must come from 'current', 'analytic' or 'checkpoint', "
                     f"got {source!r}")


def check_weights(weights, n: int = 2) -> list[float]:
    try:
        w = [float(v) for v in weights]
    except (TypeError, ValueError):
        raise ValueError(f"weights must be {n} numbers, got {weights!r}") from None
    if len(w) != n or not all(np.isfinite(w)):
        raise ValueError(f"weights must be {n} finite numbers, got {weights!r}")
    return w


def composition_name(labels: list[str], weights: list[float]) -> str:
    return " + ".join(f"{w:.3g}·[{label}]" for label, w in zip(labels, weights))


def compose(engine, cmd: Compose) -> None:
    """Install ``Σ wᵢ Eᵢ`` of ``spec["terms"]`` (two specs: ``{"source": "current"}``,
    ``{"source": "analytic", "name": ...}`` or ``{"source": "checkpoint", "path": ...}``) with
    ``spec["weights"]`` as the current model; the viewer restarts on it (``model_changed``)."""
    if _training_running(engine):
        _refuse(engine, "compose", "A training run is going: stop it before composing "
                                          "(the composition would replace its model).")
        return
    base, trainer = _base(engine)
    try:
        weights = check_weights(list(cmd.weights), len(cmd.terms))
        if len(weights) != 2:
            raise ValueError("a composition takes two energies")
        terms = [_term(t, base, engine) for t in cmd.terms]
    except (ValueError, CheckpointError, DatasetError, OSError, KeyError) as exc:
        _refuse(engine, "compose", f"Cannot compose: {exc}")
        return
    energy = SumEnergy([t[0] for t in terms], weights)
    labels = [t[1] for t in terms]
    lo = min(t[2][0] for t in terms)
    hi = max(t[2][1] for t in terms)
    model = ModelState(
        energy=energy,
        name=composition_name(labels, weights),
        kind="points",
        event_shape=(2,),
        value_range=(lo, hi),
        data_desc={},
        sampler_defaults={"kind": "langevin", "step_size": 0.01, "temperature": 1.0},
        source="composition",
        step=0,
    )
    engine.end_jobs("a composition is shown")
    engine.model = model
    # a saved checkpoint must hold what is shown; the run comes back with uncompose()
    engine.trainer = None
    engine.composition = Composition(energy, base, trainer, labels)
    engine.emit_event(Composed(tuple(labels), tuple(weights), model.name))
    engine.announce_model(composition=engine.composition.info())


def set_weights(engine, cmd: SetComposeWeights) -> None:
    """Change the weights of the shown composition in place; running chains feel it at their
    next step, and a fresh landscape follows."""
    comp = active_composition(engine)
    if comp is None:
        _refuse(engine, "weights", "No composition is shown: press Compose first.")
        return
    try:
        w = check_weights(list(cmd.weights), len(comp.energy.weights))
    except ValueError as exc:
        _refuse(engine, "weights", str(exc))
        return
    comp.energy.weights[:] = w
    engine.model.name = composition_name(comp.labels, w)
    job = engine.slots["viewer"].job
    if isinstance(job, SampleJob) and job.sampler.energy is comp.energy and job.sampler.mask is None:
        # the sampler caches E and ∇E at the current state: drop them (MALA would accept with
        # stale energies for one step)
        job.sampler.set_state(job.sampler.x)
    engine.emit_event(WeightsChanged(tuple(w), engine.model.name))
    engine.compute_landscape({"request_id": "weights"})


def uncompose(engine, cmd: Uncompose | None = None) -> None:
    """Go back to the model (and training run) that was current before :func:`compose`."""
    comp = active_composition(engine)
    if comp is None:
        _refuse(engine, "uncompose", "No composition is shown.")
        return
    engine.end_jobs("the composition was closed")
    engine.model = comp.base
    engine.trainer = comp.trainer
    engine.composition = None
    engine.emit_event(Uncomposed(comp.base.name))
    engine.announce_model()


# --------------------------------------------------------------------------------------------
# Drawn data
# --------------------------------------------------------------------------------------------


def load_points_file(engine, cmd: LoadPointsFile) -> None:
    """Read (N, 2) points from .csv/.txt/.npy/.npz and hand them to the view."""
    path = cmd.path
    try:
        ds = load_points(path)
        pts = ds.items(np.arange(ds.count)).numpy().astype(np.float32)
    except (DatasetError, OSError, ValueError) as exc:
        _refuse(engine, "points", f"Cannot load points: {exc}")
        return
    if pts.shape[0] > MAX_DRAWN:
        _refuse(engine, "points", f"{Path(path).name} holds {pts.shape[0]:,} points; at "
                                         f"most {MAX_DRAWN:,} can be drawn and edited")
        return
    engine.emit_event(PointsLoaded(pts, str(path)))


def train_on_points(engine, cmd: TrainOnPoints) -> None:
    """Train the 2-D preset on ``points`` (a new in-memory data set): the landscape refreshes as
    it learns, the viewer's chains stop (a training job replaces them)."""
    pts = np.asarray(cmd.points, dtype=np.float32)
    if _training_running(engine):
        _refuse(engine, "train", "A training run is going: stop it first.")
        return
    if pts.ndim != 2 or pts.shape[1:] != (2,) or not np.isfinite(pts).all():
        _refuse(engine, "train", f"drawn points must be finite (N, 2), got {pts.shape}")
        return
    if pts.shape[0] < 2:
        _refuse(engine, "train", f"Training needs at least 2 points; there are {pts.shape[0]}.")
        return
    if pts.shape[0] > MAX_DRAWN:
        _refuse(engine, "train", f"at most {MAX_DRAWN:,} points, got {pts.shape[0]:,}")
        return
    name = f"drawn points ({pts.shape[0]})"
    try:
        ds = PointsDataset(pts, name=name, source="drawn")
        cfg = preset_2d(name)
        cfg.steps = int(cmd.steps)
        cfg.validate()
    except (DatasetError, ValueError) as exc:
        _refuse(engine, "train", f"Cannot train on these points: {exc}")
        return
    engine.add_dataset(name, ds)  # selected_dataset() finds it by name from now on
    engine.slots["training"].live.update(paused=False)
    request = JobRequest(
        "train",
        {"config": cfg.to_dict(), "landscape_every": DRAWN_LANDSCAPE_EVERY,
         # a drawn set lives in memory only: an autosave could not be resumed without it
         "autosave_every": 0},
        seed=cfg.seed, record=False, purpose="training",
    )
    engine.emit_event(TrainingOnPoints(name, int(pts.shape[0])))
    engine.start_job(request)


__all__ = [
    "ANALYTIC_LABELS", "reply_model_info", "request_landscape",
    "set_view_spec", "drop_chains", "compose", "set_weights", "uncompose", "load_points_file",
    "train_on_points", "active_composition",
]
