"""The level strip: a multigrid ladder or a diffusion-recovery walk, one small grid per level.

A ladder shows 7×7 → 14×14 → 28×28 side by side, a recovery model noise → t=K−1 → … → t=0, each
with its mean energy and its steps; the level being sampled is marked. Hidden for models without
levels. It draws ``LevelImage`` entries of a frame and never asks the engine for anything.
"""

from __future__ import annotations

import pyqtgraph as pg

from ebm_studio.worker.frames import LevelImage

STATE_MARK = {"running": "▶ ", "done": "", "waiting": "· "}
RUNNING_PEN = pg.mkPen((255, 200, 60), width=2)
IDLE_PEN = pg.mkPen((90, 90, 90), width=1)


class LevelStrip(pg.GraphicsLayoutWidget):
    """One view box per level, each with an image and a title; ``show_levels`` redraws them."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("level_strip")
        self.setBackground("k")
        self.setToolTip(
            "Levels of a coarse-to-fine ladder (each level's result, upsampled, starts the next) or "
            "of diffusion recovery (sampling walks from noise down to t=0). ▶ marks the level being "
            "sampled; E is the mean energy there.")
        self.setFixedHeight(160)
        self._boxes: list[tuple[pg.LabelItem, pg.ViewBox, pg.ImageItem]] = []
        self._names: list[str] = []
        self.setVisible(False)

    def show_levels(self, levels: list[LevelImage]) -> None:
        if not levels:
            self.setVisible(False)
            return
        names = [lv.name for lv in levels]
        if names != self._names:
            self._rebuild(names)
        for (label, box, image), lv in zip(self._boxes, levels):
            # two short lines, so that a dozen noise levels fit side by side at 1100 px
            text = STATE_MARK.get(lv.state, "") + lv.name + "<br>" + (
                f"E {lv.mean_energy:.3g}" if lv.mean_energy is not None else "&nbsp;")
            label.setText(text, size="8pt" if len(levels) <= 6 else "7pt")
            box.setBorder(RUNNING_PEN if lv.state == "running" else IDLE_PEN)
            if lv.grid is None:
                image.clear()
                continue
            img = lv.grid[..., 0] if lv.grid.shape[-1] == 1 else lv.grid
            first = image.image is None or image.image.shape != img.shape
            image.setImage(img, autoLevels=False, levels=(0, 255))
            if first:
                box.autoRange(padding=0.02)
        self.setVisible(True)

    def _rebuild(self, names: list[str]) -> None:
        self.ci.clear()
        self._boxes = []
        for col, _ in enumerate(names):
            label = self.ci.addLabel("", row=0, col=col)
            box = self.ci.addViewBox(row=1, col=col, lockAspect=True, enableMouse=False)
            box.invertY(True)
            image = pg.ImageItem(axisOrder="row-major")
            box.addItem(image)
            self._boxes.append((label, box, image))
        self._names = names

    def level_names(self) -> list[str]:
        return list(self._names)
