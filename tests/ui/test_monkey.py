"""A minute of random input while the viewer, a training run and a landscape fit run: random
clicks on enabled buttons, values in spin boxes and sliders, picks in combo boxes, tab switches,
keys and clicks in the plots. No exception may escape (pytest-qt fails the test on one raised in a
slot), the event loop never stalls for long, and the window still answers at the end.

Dialogs that would wait for a person (file pickers, questions, the colour picker) answer at once
with Cancel. Numbers stay within a few times their current value, so a random batch of 65,536
ConvNet chains cannot turn the test into a memory test.
"""

from __future__ import annotations

import math
import random
import time

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QMessageBox,
    QSpinBox,
    QWidget,
)

from test_training_panel import tiny_2d

DURATION_S = 60.0
#: the longest the GUI thread may be busy at once while the monkey plays
MAX_STALL_S = 2.0
KEYS = [Qt.Key.Key_Space, Qt.Key.Key_Right, Qt.Key.Key_Left, Qt.Key.Key_Home, Qt.Key.Key_End,
        Qt.Key.Key_R, Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight, Qt.Key.Key_Plus,
        Qt.Key.Key_Minus, Qt.Key.Key_Escape, Qt.Key.Key_Return, Qt.Key.Key_Tab]


@pytest.fixture
def no_dialogs(monkeypatch):
    for name in ("getOpenFileName", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, name, staticmethod(lambda *a, **k: ("", "")))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: ""))
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor()))
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.No))
    monkeypatch.setattr(QMessageBox, "about", staticmethod(lambda *a, **k: None))
    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.Cancel)


def _visible(window, kind) -> list[QWidget]:
    return [w for w in window.findChildren(kind) if w.isVisible() and w.isEnabled()]


def _number(rng: random.Random, box) -> float:
    lo, hi = box.minimum(), box.maximum()
    cur = box.value()
    hi = min(hi, max(abs(cur) * 4, lo + 10))  # a few times the current value at most
    if isinstance(box, QSpinBox):
        return rng.randint(int(lo), int(max(lo, hi)))
    if lo > 0:
        return math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo))))
    return rng.uniform(lo, hi)


def _act(rng: random.Random, window) -> str:
    what = rng.choice(["button", "button", "spin", "slider", "combo", "tab", "key", "plot"])
    _act.last = ""
    if what == "tab":
        window.tabs.setCurrentIndex(rng.randrange(window.tabs.count()))
    elif what == "button":
        buttons = _visible(window, QAbstractButton)
        if buttons:
            b = rng.choice(buttons)
            _act.last = b.text() or b.objectName()
            b.click()
    elif what == "spin":
        boxes = _visible(window, QSpinBox) + _visible(window, QDoubleSpinBox)
        if boxes:
            box = rng.choice(boxes)
            box.setValue(_number(rng, box))
            _act.last = f"{box.objectName()}={box.value()}"
            box.editingFinished.emit()
    elif what == "slider":
        sliders = _visible(window, QAbstractSlider)
        if sliders:
            s = rng.choice(sliders)
            s.setValue(rng.randint(s.minimum(), s.maximum()))
    elif what == "combo":
        combos = [c for c in _visible(window, QComboBox) if c.count() and c.objectName() != "device_box"]
        if combos:
            c = rng.choice(combos)
            c.setCurrentIndex(rng.randrange(c.count()))
            _act.last = f"{c.objectName()}={c.currentText()}"
            c.activated.emit(c.currentIndex())
    elif what == "key":
        target = window.focusWidget() or window
        QTest.keyClick(target, rng.choice(KEYS))
    else:  # a click somewhere in a plot or canvas of the current tab
        views = [w for w in _visible(window, QWidget) if type(w).__name__ in
                 ("PlotWidget", "GraphicsLayoutWidget", "ChainView", "PaintCanvas", "ImageView")]
        if views:
            v = rng.choice(views)
            QTest.mouseClick(v, Qt.MouseButton.LeftButton, pos=QPoint(rng.randrange(max(1, v.width())),
                                                                       rng.randrange(max(1, v.height()))))
    return f"{what} {window.tabs.tabText(window.tabs.currentIndex())} {_act.last}"


@pytest.mark.slow
def test_a_minute_of_random_input_while_jobs_run(make_window, qtbot, no_dialogs):
    window = make_window(True)
    window.resize(1280, 820)
    qtbot.waitUntil(lambda: window.viewer.view.frames_drawn > 2, timeout=20000)
    # a training run and a landscape fit under way before the monkey starts
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    qtbot.waitUntil(lambda: p.data.name is not None and not p.data.busy, timeout=20000)
    tiny_2d(p, qtbot)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "running", timeout=20000)
    view = window.panels["landscape"]
    window.tabs.setCurrentWidget(view)
    view.tools.setCurrentIndex(3)
    view.fit.fit_button.click()

    stalls: list[float] = []
    last = [time.perf_counter()]

    recent: list[str] = []  # the last actions before each beat, to name the cause of a stall

    def beat() -> None:
        now = time.perf_counter()
        stalls.append(now - last[0])
        if now - last[0] > 0.5:
            print(f"stall {now - last[0]:.2f} s after: {recent[-3:]}")
        last[0] = now

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(20)
    rng = random.Random(1234)
    actions = 0
    t_end = time.perf_counter() + DURATION_S
    try:
        while time.perf_counter() < t_end:
            recent.append(_act(rng, window))
            actions += 1
            last[0] = time.perf_counter()  # the action itself is not a stall of the loop
            qtbot.wait(rng.randint(0, 40))
    finally:
        heart.stop()
    assert actions > 300
    worst = max(stalls)
    assert worst < MAX_STALL_S, f"the event loop stalled for {worst:.2f} s"
    # still answering: a queued call runs at once, and the engine thread is alive
    answered = []
    QTimer.singleShot(0, lambda: answered.append(True))
    qtbot.waitUntil(lambda: bool(answered), timeout=1000)
    assert window.host.thread.isRunning()
    print(f"{actions} random actions in {DURATION_S:.0f} s; longest event-loop stall {worst * 1000:.0f} ms")
