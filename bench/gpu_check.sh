#!/usr/bin/env bash
# One short GPU check (about 5 minutes): is CUDA there, the core tests that run headless (the CUDA
# graph block among them), sampler throughput step by step and in graphed blocks at the app's batch
# sizes and at sizes that fill the device, this core against the peers where they are installed,
# and 60 s of training with the bundled recipes (digits by each of the three methods, and a 2-D
# toy) with steps/s and the quality meter's figures. Runs without Qt (the core and the CLI).
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python -m pytest -q tests/core -m "not slow" -p no:qt 2>&1 | tail -3
python bench/block_throughput.py --device cuda --rounds 3
python bench/peers.py --device cuda --rounds 3 --no-accuracy
for recipe in digits digits-multigrid digits-drl 8gaussians; do
  cfg="$(mktemp --suffix=.toml)"
  sed -e 's/^device = "cpu"/device = "cuda"/' "checkpoints/recipes/$recipe.toml" > "$cfg"
  ebm-studio train --config "$cfg" --out "/tmp/gpu-$recipe.pt" --every 200 --seconds 60 2>&1 | tail -3
  ebm-studio quality "/tmp/gpu-$recipe.pt" --no-references
done
