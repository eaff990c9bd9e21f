"""Training engine, configuration and checkpoints: round trips, exact resume, divergence, safety."""

from __future__ import annotations

import pickle
import zipfile

import pytest
import torch

from ebm_studio.core.checkpoint import (
    CheckpointError,
    energy_checkpoint,
    load_checkpoint,
    save_checkpoint,
    trainer_checkpoint,
)
from ebm_studio.core.config import PRESETS, ConfigError, TrainConfig, preset_2d
from ebm_studio.core.energies import eight_gaussians_energy
from ebm_studio.core.training import DivergenceError, StepAborted, Trainer


def tiny_config(**optim) -> TrainConfig:
    cfg = preset_2d("8gaussians")
    cfg.optim.batch_size = 32
    cfg.sampler.steps = 5
    cfg.sampler.buffer_size = 256
    cfg.model.hidden = [32, 32]
    cfg.device = "cpu"
    for k, v in optim.items():
        setattr(cfg.optim, k, v)
    return cfg


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_toml(name):
    cfg = PRESETS[name]()
    again = TrainConfig.from_toml(cfg.to_toml())
    assert again == cfg


def test_digits_preset_is_the_uva_setup():
    cfg = PRESETS["digits (UvA-style)"]()
    s, o = cfg.sampler, cfg.optim
    assert (s.kind, s.step_size, s.noise, s.steps) == ("tuned", 10.0, 0.005, 60)
    assert (s.init, s.buffer_size, s.reseed_fraction) == ("buffer", 8192, 0.05)
    assert (o.alpha, o.lr, o.beta1, o.beta2) == (0.1, 1e-4, 0.0, 0.999)


@pytest.mark.parametrize(
    "text,word",
    [
        ("[optim]\nlr = -1\n", "optim.lr"),
        ("[sampler]\nkind = 'gibbs'\n", "sampler.kind"),
        ("[sampler]\nsteps = 'many'\n", "sampler.steps"),
        ("[optim]\nlr = 'fast'\n", r"optim.lr has the wrong type: 'fast' \(expected a number\)"),
        ("seed = 1.5\n", r"expected a whole number\)$"),
        ("[model]\ncolour = 'red'\n", "colour"),
        ("speed = 3\n", "speed"),
        ("[optim\n", "TOML"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("".join(f"[{'x.' * 3000}y]\n"), "nested too deeply|unknown|x"),
    ],
)
def test_bad_configuration_names_the_key(text, word):
    with pytest.raises(ConfigError, match=word):
        TrainConfig.from_toml(text)


def test_config_file_errors_name_the_file(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text("[optim]\nlr = 0\n")
    with pytest.raises(ConfigError, match="run.toml"):
        TrainConfig.load(p)
    with pytest.raises(ConfigError, match="missing.toml"):
        TrainConfig.load(tmp_path / "missing.toml")


def test_resume_repeats_an_uninterrupted_run_exactly(tmp_path):
    a = Trainer(tiny_config())
    losses_a = [a.step()["loss"] for _ in range(6)]

    b = Trainer(tiny_config())
    losses_b = [b.step()["loss"] for _ in range(3)]
    path = save_checkpoint(trainer_checkpoint(b), tmp_path / "half.pt")
    ckpt = load_checkpoint(path)
    c = Trainer(ckpt.train_config())
    c.load_state(ckpt.trainer_state())
    assert c.step_count == 3
    losses_b += [c.step()["loss"] for _ in range(3)]
    assert losses_a == losses_b


def test_metrics_of_a_step():
    t = Trainer(tiny_config())
    m = t.step()
    for key in ("loss", "e_data", "e_sample", "gap", "grad_norm", "lr", "sec_per_step"):
        assert key in m and m[key] == m[key]  # present and not NaN
    assert m["gap"] == pytest.approx(m["e_sample"] - m["e_data"])


def test_divergence_stops_and_rolls_back():
    t = Trainer(tiny_config(lr=1e4, energy_limit=50.0))
    with pytest.raises(DivergenceError, match="lower learning rate") as info:
        for _ in range(50):
            t.step()
    good_step = t.step_count
    # the parameters of the last update were never verified, so the rollback goes before it
    assert info.value.step >= good_step + 1
    assert f"rolled back to step {good_step}" in str(info.value)
    params = torch.cat([p.detach().flatten() for p in t.model.parameters()])
    assert torch.isfinite(params).all()
    # the restored model is usable: energies are finite and below the limit on data
    e = t.model_energy(t.data_batch())
    assert torch.isfinite(e).all() and e.abs().max() < 50.0
    t.set_lr(1e-4)
    t.step()  # training can go on from there
    assert t.step_count == good_step + 1


def test_should_stop_aborts_a_step_without_changes():
    t = Trainer(tiny_config())
    before = [p.detach().clone() for p in t.model.parameters()]
    with pytest.raises(StepAborted):
        t.step(should_stop=lambda: True)
    assert t.step_count == 0
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))


def test_a_step_of_the_longest_leapfrog_run_can_be_stopped():
    cfg = tiny_config()
    cfg.sampler.kind = "hmc"
    cfg.sampler.n_leapfrog = 10_000  # the most a configuration allows
    t = Trainer(cfg)
    polls = iter(range(30))  # the stop comes from inside the first sampler step
    with pytest.raises(StepAborted):
        t.step(should_stop=lambda: next(polls) >= 20)
    assert t.step_count == 0
    assert t.make_sampler(t.noise(4)).should_stop is None  # the poll does not outlive the step


def test_live_learning_rate_and_sampling_changes():
    t = Trainer(tiny_config())
    t.set_lr(5e-4)
    assert t.step()["lr"] == 5e-4
    assert all(g["lr"] == 5e-4 for g in t.optimizer.param_groups)
    t.set_sampling(step_size=0.02, temperature=1.5)
    assert t.make_sampler(t.noise(4)).temperature == 1.5
    with pytest.raises(ValueError, match="learning rate"):
        t.set_lr(0)
    with pytest.raises(ValueError, match="batch_size"):
        t.set_sampling(batch_size=3)


# --- checkpoint safety ------------------------------------------------------------------------


def good_file(tmp_path):
    return save_checkpoint(energy_checkpoint(eight_gaussians_energy()), tmp_path / "good.pt")


def test_analytic_checkpoint_round_trip(tmp_path):
    ckpt = load_checkpoint(good_file(tmp_path))
    e = ckpt.build_energy()
    x = torch.randn(10, 2)
    torch.testing.assert_close(e(x), eight_gaussians_energy()(x))
    assert "mixture" in ckpt.summary()


def test_truncated_checkpoint(tmp_path):
    data = good_file(tmp_path).read_bytes()
    bad = tmp_path / "cut.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(bad)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not an EBM Studio checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_future_version(tmp_path):
    path = good_file(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["version"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="newer EBM Studio"):
        load_checkpoint(path)


class Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = good_file(tmp_path)
    raw = torch.load(path, weights_only=True)
    raw["metrics"] = {"evil": Sneaky()}
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=r"could run code \(it names print\)"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("text", ["hello world\n", "(not a pickle", "x,y\n1,2\n"])
def test_a_text_file_is_not_called_code(tmp_path, text):
    path = tmp_path / "notes.pt"
    path.write_text(text)
    with pytest.raises(CheckpointError, match="not in PyTorch's format") as info:
        load_checkpoint(path)
    assert "could run code" not in str(info.value)


def test_a_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "pickle.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(Sneaky()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
