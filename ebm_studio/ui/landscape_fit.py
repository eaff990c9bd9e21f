"""Mode covering vs mode seeking: fit q_φ to the current model by both KL directions and compare.

"Fit q_φ" starts a ``fit`` job in the engine (:mod:`ebm_studio.worker.jobs.fit_job`): MALA samples
of p_T, then a Gaussian and a K-component mixture fitted by forward KL(p‖q) (maximum likelihood on
the samples) and by reverse KL(q‖p) (reparameterised gradients, needing only E). The result is
drawn over the landscape as 2σ ellipses of every component: forward in cyan (it spreads over all
modes), reverse in magenta (it locks onto one or a few). The table lists both KL numbers of each
fit, by quadrature against p_T: each direction wins the number it minimises.

A fit job replaces the running job (as every job does): the viewer's chains stop while it runs and
restart when it ends. While a training run is going, fitting is refused (it would stop the run).
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core import landscape_render as lm
from ebm_studio.worker.api import FitProgress, FittedMixture, JobInfo, KLFits
from ebm_studio.worker.requests import JobRequest
from ebm_studio.worker.thread import EngineHost

TIPS = {
    "fit": "Fit q_φ to p_T ∝ exp(−E/T) at the view's temperature.<br><b>Forward</b> "
           "KL(p‖q) = E_p[log p − log q]: maximum likelihood on MALA samples of p, so q must cover "
           "every mode.<br><b>Reverse</b> KL(q‖p) = E_q[log q + E/T] + log Z_T: minimised by "
           "gradients through x = μ + Lε (needs E only, not Z), so q seeks a mode and stays there.",
    "k": "Number of components K of the mixture q_φ (the Gaussian is K = 1).",
    "samples": "MALA samples of p_T for the forward fit (uniform start on the data box).",
    "mcmc": "MALA steps for those samples (the step size adapts during the first half).",
    "reverse": "Adam steps of each reverse-KL fit.",
    "family": "Which fitted q_φ to draw: the single Gaussian or the K-component mixture.",
}
FORWARD_HTML = "<span style='color:#00b8d4'><b>forward</b></span>"
REVERSE_HTML = "<span style='color:#e0309f'><b>reverse</b></span>"


class FitPanel(QWidget):
    """Controls, progress and results of the KL fits; :meth:`overlays` gives what to draw."""

    overlays_changed = Signal()

    def __init__(self, host: EngineHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fit_panel")
        self.host = host
        self.result: KLFits | None = None
        self.job_id: int | None = None
        self.running = False
        self.training = False
        self.temperature = 1.0

        self.k = QSpinBox()
        self.k.setObjectName("fit_k")
        self.k.setRange(2, 8)
        self.k.setValue(4)
        self.k.setToolTip(TIPS["k"])
        self.samples = QSpinBox()
        self.samples.setObjectName("fit_samples")
        self.samples.setRange(64, 16384)
        self.samples.setSingleStep(256)
        self.samples.setValue(1024)
        self.samples.setToolTip(TIPS["samples"])
        self.mcmc = QSpinBox()
        self.mcmc.setObjectName("fit_mcmc_steps")
        self.mcmc.setRange(10, 5000)
        self.mcmc.setValue(200)
        self.mcmc.setToolTip(TIPS["mcmc"])
        self.reverse_steps = QSpinBox()
        self.reverse_steps.setObjectName("fit_reverse_steps")
        self.reverse_steps.setRange(10, 10000)
        self.reverse_steps.setValue(400)
        self.reverse_steps.setToolTip(TIPS["reverse"])
        self.fit_button = QPushButton("Fit q_φ both ways")
        self.fit_button.setObjectName("fit_button")
        self.fit_button.setToolTip(TIPS["fit"])
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("fit_stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("fit_progress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.show_forward = QCheckBox("Show forward (mode covering)")
        self.show_forward.setObjectName("fit_show_forward")
        self.show_forward.setChecked(True)
        self.show_reverse = QCheckBox("Show reverse (mode seeking)")
        self.show_reverse.setObjectName("fit_show_reverse")
        self.show_reverse.setChecked(True)
        self.family = QComboBox()
        self.family.setObjectName("fit_family")
        self.family.addItem("Gaussian (K = 1)", "gaussian")
        self.family.addItem("Mixture (K components)", "mixture")
        self.family.setToolTip(TIPS["family"])
        self.table = QLabel("")
        self.table.setObjectName("fit_results")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.table.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Mixture components K", self.k)
        form.addRow("Samples of p_T", self.samples)
        form.addRow("MALA steps", self.mcmc)
        form.addRow("Reverse-KL steps", self.reverse_steps)
        buttons = QGridLayout()
        buttons.addWidget(self.fit_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_label)
        lay.addWidget(self.family)
        lay.addWidget(self.show_forward)
        lay.addWidget(self.show_reverse)
        lay.addWidget(self.table)
        lay.addStretch(1)

        self.fit_button.clicked.connect(self.start_fit)
        self.stop_button.clicked.connect(self.stop_fit)
        for w in (self.show_forward, self.show_reverse):
            w.toggled.connect(lambda _on: self.overlays_changed.emit())
        self.family.currentIndexChanged.connect(lambda _i: self.overlays_changed.emit())

    def start_fit(self) -> None:
        if self.training:
            self.progress_label.setText("A training run is going: a fit job would replace it. "
                                        "Stop the run first, or fit when it ends.")
            return
        if self.running:
            return
        self.running = True
        self.fit_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.setValue(0)
        self.progress_label.setText(f"Starting (T = {self.temperature:.3g})…")
        self.host.run(JobRequest(
            "fit",
            {"k": self.k.value(), "n_samples": self.samples.value(), "mcmc_steps": self.mcmc.value(),
             "reverse_steps": self.reverse_steps.value(), "temperature": self.temperature},
            record=False, purpose="fit",
        ))

    def stop_fit(self) -> None:
        if self.running:
            self.host.stop("fit")

    # --- engine answers ------------------------------------------------------------------------
    def on_progress(self, ev: FitProgress) -> None:
        self.job_id = ev.job_id
        self.progress.setValue(int(1000 * ev.fraction))
        self.progress_label.setText(ev.text)

    def on_result(self, fits: KLFits) -> None:
        self.result = fits
        self.progress.setValue(1000)
        self.progress_label.setText(
            f"Done in {fits.seconds:.1f} s at T = {fits.temperature:.3g} "
            f"({fits.n_samples:,} MALA samples, acceptance {fits.accept or 0:.2f}).")
        self._show_table()
        self.overlays_changed.emit()

    def on_job_state(self, info: JobInfo) -> bool:
        """Track our fit job; True when it just ended."""
        if info.kind != "fit":
            return False
        state = info.state
        if info.active:
            self.job_id = info.job_id
            return False
        ended = self.running
        self.running = False
        self.fit_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if state != "finished":
            self.progress_label.setText(f"Fit {state.value}: {info.message}".strip())
        return ended

    def clear(self) -> None:
        """A new model: the old fits do not describe it."""
        if self.result is not None:
            self.result = None
            self.table.setText("")
            self.progress.setValue(0)
            self.progress_label.setText("The model changed: fit again.")
            self.overlays_changed.emit()

    # --- drawing -------------------------------------------------------------------------------
    def _show_table(self) -> None:
        r = self.result
        if r is None:
            self.table.setText("")
            return
        rows = []
        for pair, html_name in ((r.forward, FORWARD_HTML), (r.reverse, REVERSE_HTML)):
            for f, fam_name in ((pair.gaussian, "Gaussian"), (pair.mixture, f"K={r.k}")):
                rows.append(f"<tr><td>{html_name}</td><td>{fam_name}</td>"
                            f"<td align='right'>{f.kl_pq:.3g}</td><td align='right'>{f.kl_qp:.3g}</td>"
                            f"<td align='right'>{self._modes_hit(f)}</td></tr>")
        self.table.setText(
            "<table cellspacing='4'><tr><th>fit</th><th>q_φ</th><th>KL(p‖q)</th><th>KL(q‖p)</th>"
            "<th>comp.</th></tr>" + "".join(rows) + "</table>"
            "<p>KLs in nats against p_T by quadrature; 'comp.' counts components with weight "
            "≥ 5 %. Each direction wins the number it minimises: forward the lower KL(p‖q) (it "
            "covers every mode), reverse the lower KL(q‖p) (it seeks one).</p>")

    @staticmethod
    def _modes_hit(fit: FittedMixture) -> str:
        """Components with weight ≥ 5 %, as a rough count of the modes a fit sits on."""
        return str(int((fit.weights >= 0.05).sum()))

    def overlays(self) -> tuple[tuple | None, tuple | None]:
        """(forward, reverse) as (outline, means) for the plot, or None each."""
        r = self.result
        if r is None:
            return None, None
        fam = self.family.currentData()
        out = []
        for pair, box in ((r.forward, self.show_forward), (r.reverse, self.show_reverse)):
            if not box.isChecked():
                out.append(None)
                continue
            f = pair.family(fam)
            keep = f.weights >= 0.01
            out.append((lm.mixture_outline(f), f.means[keep]))
        return out[0], out[1]

    def set_temperature(self, t: float) -> None:
        self.temperature = float(t) if math.isfinite(t) and t > 0 else 1.0
