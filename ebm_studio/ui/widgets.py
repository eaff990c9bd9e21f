"""Small reusable controls: a log-scale slider with a spin box, a slider that jumps to the click,
and a rate formatter."""

from __future__ import annotations

import math
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QSlider,
    QStatusBar,
    QStyle,
    QStyleOptionSlider,
    QWidget,
)

SLIDER_STEPS = 1000


class LogSlider(QWidget):
    """A slider on a log scale between ``low`` and ``high`` plus a spin box for exact values.

    ``valueChanged(float)`` fires for user changes from either control; the spin box accepts any
    value in [low, high] (the slider shows the nearest position).
    """

    valueChanged = Signal(float)

    def __init__(
        self,
        low: float,
        high: float,
        value: float,
        decimals: int = 4,
        suffix: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if not 0 < low < high:
            raise ValueError(f"LogSlider needs 0 < low < high, got {low}, {high}")
        self._low, self._high = low, high
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(decimals)
        self.spin.setRange(low, high)
        self.spin.setKeyboardTracking(False)  # typing "0.05" must not fire for "0" and "0.0"
        self.spin.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        if suffix:
            self.spin.setSuffix(suffix)
        self.spin.setMinimumWidth(90)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self._syncing = False
        self.setValue(value)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def _to_pos(self, v: float) -> int:
        v = min(max(v, self._low), self._high)
        f = math.log(v / self._low) / math.log(self._high / self._low)
        return int(round(f * SLIDER_STEPS))

    def _from_pos(self, pos: int) -> float:
        f = pos / SLIDER_STEPS
        return self._low * (self._high / self._low) ** f

    def value(self) -> float:
        return self.spin.value()

    def setValue(self, v: float) -> None:
        """Set without emitting ``valueChanged`` (programmatic changes are not user changes)."""
        self._syncing = True
        try:
            self.spin.setValue(float(v))
            self.slider.setValue(self._to_pos(float(v)))
        finally:
            self._syncing = False

    def setToolTip(self, text: str) -> None:  # noqa: N802 (Qt naming)
        super().setToolTip(text)
        self.slider.setToolTip(text)
        self.spin.setToolTip(text)

    def _from_slider(self, pos: int) -> None:
        if self._syncing:
            return
        v = self._from_pos(pos)
        # round to the spin box's precision, keeping ~3 significant digits
        digits = max(0, min(self.spin.decimals(), 2 - int(math.floor(math.log10(v)))))
        v = round(v, digits)
        self._syncing = True
        try:
            self.spin.setValue(v)
        finally:
            self._syncing = False
        self.valueChanged.emit(self.spin.value())

    def _from_spin(self, v: float) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.slider.setValue(self._to_pos(v))
        finally:
            self._syncing = False
        self.valueChanged.emit(v)


class JumpSlider(QSlider):
    """A horizontal slider whose track jumps to the click (Qt's default moves one page towards
    it), as a scrubber should; the handle still drags as usual."""

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if event.button() == Qt.MouseButton.LeftButton and self.isEnabled():
            opt = QStyleOptionSlider()
            self.initStyleOption(opt)
            style = self.style()
            handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                          QStyle.SubControl.SC_SliderHandle, self)
            pos = event.position().toPoint()
            if not handle.contains(pos):
                groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                              QStyle.SubControl.SC_SliderGroove, self)
                span = max(groove.width() - handle.width(), 1)
                x = pos.x() - groove.x() - handle.width() // 2
                self.setValue(QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), x, span,
                                                             opt.upsideDown))
        super().mousePressEvent(event)


def format_rate(steps_per_s: float, decimals: int = 0) -> str:
    """'1 step/s', '1,234 steps/s'; below one step a second, '2.5 s/step' (a ConvNet on a CPU)."""
    if not steps_per_s > 0:
        return "– steps/s"
    if steps_per_s < 1:
        return f"{1 / steps_per_s:,.1f} s/step"
    text = f"{steps_per_s:,.{decimals}f}"
    return f"{text} step/s" if float(text.replace(",", "")) == 1 else f"{text} steps/s"


class RedrawTimer(QTimer):
    """Calls ``draw`` at most ``hz`` times a second. Panels keep the newest data ("latest wins")
    and draw it from here, never once per arrival, so a fast engine cannot flood the GUI."""

    def __init__(self, owner: QWidget, hz: float, draw: Callable[[], None]) -> None:
        super().__init__(owner)
        self.setObjectName("redraw_timer")
        self.setInterval(max(1, int(round(1000 / hz))))
        self.timeout.connect(draw)
        self.start()


class ElidingStatusBar(QStatusBar):
    """A status bar whose messages end in '…' where they would run under the permanent widgets
    (the device box, job, rate, step and energy labels); the whole text is the tooltip."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._permanent: list[QWidget] = []

    def addPermanentWidget(self, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802 (Qt naming)
        self._permanent.append(widget)
        super().addPermanentWidget(widget, stretch)

    def message_width(self) -> int:
        """Pixels left for a message beside the visible permanent widgets."""
        taken = sum(w.width() + 6 for w in self._permanent if w.isVisible())
        return max(40, self.width() - taken - 24)

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 (Qt naming)
        self.setToolTip(text)
        shown = self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, self.message_width())
        super().showMessage(shown, timeout)
