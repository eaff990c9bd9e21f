"""Checkpoints, divergence and configuration files of the Training tab (see ``training_panel``).

A mixin of :class:`~ebm_studio.ui.training_panel.TrainingPanel`: Save and Open checkpoint (the
engine writes and reads them between steps), the divergence banner and its Roll back, and the TOML
export and import of the form's settings (refused with the field and its range when the form
cannot hold a value).
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from ebm_studio.core.config import ConfigError, TrainConfig
from ebm_studio.worker.api import OpenCheckpoint, RollBack, SaveCheckpoint


class TrainingFiles:
    # ==============================================================================================
    # checkpoints, divergence, configuration files
    # ==============================================================================================
    def save_checkpoint(self, path: str | None = None) -> bool:
        """Save a resumable checkpoint (the engine writes it atomically between steps); False
        when the user cancelled the file dialog."""
        if path is None:
            path = self.ask_save_path()
            if not path:
                return False
        if not path.endswith(".pt"):
            path += ".pt"
        self.checkpoint_dir = str(Path(path).parent)
        self.host.send(SaveCheckpoint(str(path)))
        return True

    def ask_save_path(self) -> str:
        start = Path(self.checkpoint_dir) / f"{Path(self.data.name or 'model').stem}.pt"
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", str(start),
                                              "EBM Studio checkpoints (*.pt)")
        return path

    def unsaved_steps(self) -> int:
        """Training steps of this window's run that no file the user chose holds (autosaves in
        the autosave folder do not count: quitting should still ask)."""
        return max(0, self.step - self._kept_step) if self.has_run else 0

    def open_checkpoint(self, path: str | None = None) -> None:
        """Open a checkpoint: it can be sampled at once, and resumed with Continue training."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self.checkpoint_dir,
                                                  "EBM Studio checkpoints (*.pt);;All files (*)")
            if not path:
                return
        self.checkpoint_dir = str(Path(path).parent)
        self.host.send(OpenCheckpoint(str(path)))

    def _show_divergence(self, message: str) -> None:
        self.divergence_label.setText(f"<b>The run diverged.</b> {message}")
        self.rollback_lr.setValue(max(self.form.lr.value() / 10.0, 1e-8))
        self.banner.show()

    def rollback(self) -> None:
        """Reload the last good checkpoint and lower the learning rate (after a divergence)."""
        lr = self.rollback_lr.value()
        if not (math.isfinite(lr) and lr > 0):
            self._show_message("The new learning rate must be a positive number.")
            return
        self.rollback_button.setEnabled(False)
        self.host.send(RollBack(float(lr)))

    def export_config(self, path: str | None = None) -> None:
        """Write the form's configuration as TOML for ``ebm-studio train --config``."""
        cfg = self._form_config()
        if cfg is None:
            return
        if path is None:
            start = Path(self.checkpoint_dir) / f"{Path(cfg.data.name).stem}.toml"
            path, _ = QFileDialog.getSaveFileName(self, "Export training configuration", str(start),
                                                  "TOML files (*.toml)")
            if not path:
                return
        if not path.endswith(".toml"):
            path += ".toml"
        try:
            cfg.save(path)
        except OSError as exc:
            self._show_message(f"Cannot write {path}: {exc}")
            return
        self._hide_message()
        self.status_label.setText(f"Wrote {path}. Rerun headless with: ebm-studio train --config "
                                  f"{path} --out run.pt")

    def import_config(self, path: str | None = None) -> None:
        """Fill the form from a TOML configuration (as ``export_config`` writes)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import training configuration",
                                                  self.checkpoint_dir, "TOML files (*.toml);;All files (*)")
            if not path:
                return
        try:
            cfg = TrainConfig.load(path)
        except ConfigError as exc:  # the message names the file
            self._show_message(f"Cannot import the settings: {exc}")
            return
        beyond = self.form.out_of_range(cfg)
        if beyond:  # clamping would train something else than the file says
            self._show_message(f"Cannot use {Path(path).name}: " + "; ".join(beyond)
                               + ". Nothing was imported.")
            return
        self._hide_message()
        self.form.set_config(cfg)
        self.status_label.setText(f"Settings read from {path}.")
        if cfg.data.name != self.data.name or cfg.data.image_size != self.data.image_size:
            self.data.select(cfg.data.name, cfg.data.image_size)

