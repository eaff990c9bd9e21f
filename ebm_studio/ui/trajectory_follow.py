"""Playback and following one chain in the Trajectories tab (see ``trajectory_scrubber``).

A mixin of :class:`~ebm_studio.ui.trajectory_scrubber.TrajectoryScrubber`: Play/Back at a frame
rate (once, loop, bounce) and one chain followed through the recording (picked by clicking a tile
or a particle, or by number), with its energy on the trace and its path on the plot.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from ebm_studio.core.imaging import grid_shape
from ebm_studio.worker.api import (
    ChainPicked,
    PickChain,
)


class ChainFollowing:
    # ------------------------------------------------------------------------------------------
    # playback
    # ------------------------------------------------------------------------------------------
    def play(self, direction: int) -> None:
        """Play forward (+1) or backward (-1) at the chosen rate; from the far end if at the end."""
        if not len(self.steps):
            return
        self._play_dir = 1 if direction >= 0 else -1
        v, top = self.timeline.value(), self.timeline.maximum()
        if self.mode_box.currentData() == "once":
            if self._play_dir > 0 and v >= top:
                self.go_to_index(0)
            elif self._play_dir < 0 and v <= 0:
                self.go_to_index(top)
        self.play_timer.start(max(1, int(round(1000 / self.fps_spin.value()))))
        self.timeline.setFocus(Qt.FocusReason.OtherFocusReason)

    def stop_playback(self) -> None:
        self.play_timer.stop()
        self._play_dir = 0

    def _on_fps(self, fps: int) -> None:
        if self.play_timer.isActive():
            self.play_timer.setInterval(max(1, int(round(1000 / fps))))

    def _play_tick(self) -> None:
        top = self.timeline.maximum()
        v = self.timeline.value() + self._play_dir
        mode = self.mode_box.currentData()
        if v > top or v < 0:
            if mode == "loop":
                v = 0 if v > top else top
            elif mode == "bounce" and top > 0:
                self._play_dir = -self._play_dir
                v = self.timeline.value() + self._play_dir
            else:
                self.stop_playback()
                return
        self.go_to_index(v)

    # ------------------------------------------------------------------------------------------
    # following one chain
    # ------------------------------------------------------------------------------------------
    def follow(self, chain: int | None) -> None:
        """Follow chain ``chain`` (None: none): enlarged, with its own energy curve."""
        if chain is not None and not 0 <= chain < max(self.n_chains, 1):
            self._message(f"There is no chain #{chain}: this recording has {self.n_chains} chains.")
            return
        if chain == self.chain:
            return
        self.chain = chain
        self.track = None
        self.trace.set_chain(None, None, None)
        self.chain_spin.blockSignals(True)
        self.chain_spin.setValue(-1 if chain is None else chain)
        self.chain_spin.blockSignals(False)
        self._update_follow()
        self._info_pending = False  # a new question: do not wait for the old answer
        self.request_info()

    def _on_chain_spin(self, value: int) -> None:
        self.follow(None if value < 0 else value)

    def _tile_rect(self, chain: int) -> tuple[int, int, int, int] | None:
        """(x0, y0, w, h) of a chain's tile in the image grid (pad 1, as ``image_grid``)."""
        f = self.frame
        if f is None or f.tile_shape is None or not 0 <= chain < f.n_chains:
            return None
        h, w = f.tile_shape
        _, cols = grid_shape(f.n_chains)
        r, q = divmod(chain, cols)
        return 1 + q * (w + 1), 1 + r * (h + 1), w, h

    def tile_at(self, x: float, y: float) -> int | None:
        """The chain whose tile holds grid pixel coordinates (x, y), or None (padding, outside)."""
        f = self.frame
        if f is None or f.tile_shape is None:
            return None
        h, w = f.tile_shape
        rows, cols = grid_shape(f.n_chains)
        q, dx = divmod(x - 1, w + 1)
        r, dy = divmod(y - 1, h + 1)
        if not (0 <= q < cols and 0 <= r < rows and dx < w and dy < h):
            return None
        chain = int(r) * cols + int(q)
        return chain if chain < f.n_chains else None

    def _on_view_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.frame is None:
            return
        self.timeline.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = self.view.plot.vb.mapSceneToView(event.scenePos())
        if self.frame.kind == "images":
            chain = self.tile_at(pos.x(), pos.y())
            if chain is not None:
                self.follow(chain)
        elif self.branch_id is not None:
            self.host.send(PickChain(self.branch_id, self.frame.step, pos.x(), pos.y()))

    def _on_pick(self, ev: ChainPicked) -> None:
        if ev.chain is None:
            if ev.message:
                self._message(f"No chain picked: {ev.message}")
            return
        self.follow(ev.chain)

    def _update_follow(self) -> None:
        """Redraw the followed chain (enlarged view, highlight) for the frame shown now."""
        f, c = self.frame, self.chain
        if f is None or c is None or c >= f.n_chains:
            self.chain_view.clear_chain()
            self.chain_caption.setText(self.chain_view.title)
            self.view.highlight_tile(None)
            self.view.highlight_at(None)
            self.chain_label.setText("")
            return
        e = float(f.energies[c]) if c < f.energies.size else float("nan")
        title = f"chain #{c} · step {f.step:,} · E {e:.4g}"
        if f.kind == "images":
            x0, y0, w, h = self._tile_rect(c)
            tile = f.grid[y0 : y0 + h, x0 : x0 + w]  # exactly the recorded pixels of that chain
            self.chain_view.show_tile(tile, title)
            self.view.highlight_tile((x0 - 0.5, y0 - 0.5, w + 1, h + 1))
            self.view.highlight_at(None)
        else:
            path, upto, pos = None, 0, None
            tr = self.track
            if tr is not None and tr.chain == c and tr.state is not None and len(tr.steps):
                path = tr.state
                upto = int(np.searchsorted(tr.steps, f.step, side="right")) - 1
                if 0 <= upto < len(path) and tr.steps[upto] == f.step:
                    pos = path[upto]
            if f.points is not None and c < len(f.points):
                pos = f.points[c]  # in the frame itself: exactly the recorded position
            if pos is None:
                self.chain_label.setText(f"chain #{c}: loading its path…")
                return
            self.chain_view.show_path(path, max(0, upto), pos, title)
            self.view.highlight_tile(None)
            self.view.highlight_at(pos)
        self.chain_caption.setText(self.chain_view.title)
        text = f"chain #{c}: E {e:.4g} at step {f.step:,}"
        finite = f.energies[np.isfinite(f.energies)]
        if finite.size:
            text += f" (all chains: mean {float(finite.mean()):.4g})"
        self.chain_label.setText(text)

