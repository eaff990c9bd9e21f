"""Pure torch/numpy maths of EBM Studio: energies, samplers, chains, training, data, landscapes.

Nothing in this package imports Qt; everything here is usable headless and tested statistically.
"""
