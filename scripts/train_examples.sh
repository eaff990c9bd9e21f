#!/usr/bin/env bash
# Re-train the bundled examples in checkpoints/ from their recipes, one command each, and measure
# them (the figures are stored in each checkpoint; `ebm-studio info` and `quality` print them).
# Run from the repository root on an otherwise idle machine: the wall times go into the report.
set -euo pipefail
cd "$(dirname "$0")/.."
names=("$@")
if [ "${#names[@]}" -eq 0 ]; then
  names=()
  for recipe in checkpoints/recipes/*.toml; do names+=("$(basename "$recipe" .toml)"); done
fi
for name in "${names[@]}"; do
  ebm-studio train --config "checkpoints/recipes/$name.toml" --out "checkpoints/$name.pt" ${EBM_THREADS:+--threads "$EBM_THREADS"} \
    --compact --quality 256 --every 1000
  ebm-studio sample "checkpoints/$name.pt" --init buffer --n 16 --steps 1 --out "checkpoints/$name.png"
done
