"""The allocator setting the app and the CLI start with: sampling a ConvNet then reuses its memory
instead of faulting fresh pages in every step (checked in a fresh process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    if sys.argv[1] == "tuned":
        from ebm_studio.core.allocator import tune_allocator
        assert tune_allocator()
    from ebm_studio.core.energies import ConvEnergy
    from ebm_studio.core.samplers import make_sampler
    torch.manual_seed(0)
    s = make_sampler("langevin", ConvEnergy(1, 28, 16), torch.rand(128, 1, 28, 28), step_size=1e-3)
    s.run(10)  # the heap grows to its working size first
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    s.run(20)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20)
    prepared = s.energy._grad_plan.weights(s.energy, s.compute_dtype, s.device)
    print(",".join(how for _, how, _ in prepared["convs"]))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting")
def test_a_tuned_process_samples_without_page_faults_every_step():
    faults, routes = {}, {}
    for mode in ("plain", "tuned"):
        out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        faults[mode], routes[mode] = float(out.stdout.split()[-2]), out.stdout.split()[-1]
    # the ConvNet's input gradients take the forward-conv routes only where their buffers are reused
    assert routes == {"plain": "library,library,library", "tuned": "flipped,phases,library"}, routes
    if faults["plain"] <= 50:
        pytest.skip(f"this environment's allocator already reuses memory ({faults})")
    assert faults["tuned"] < min(25.0, faults["plain"] / 5), faults
