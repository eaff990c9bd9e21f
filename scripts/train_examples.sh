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
  # the thumbnail: the replay buffer as it is, or a level model's whole walk (buffer or noise)
  if grep -q '^name = "drl"' "checkpoints/recipes/$name.toml"; then draw=(--init noise)
  elif grep -q '^name = "multigrid"' "checkpoints/recipes/$name.toml"; then draw=(--init buffer)
  else draw=(--init buffer --steps 1); fi
  ebm-studio sample "checkpoints/$name.pt" "${draw[@]}" --n 16 --out "checkpoints/$name.png"
done
