"""EBM Studio: train and explore energy-based models on the desktop.

Layers (imports point downwards only): ``ui`` (Qt widgets) -> ``worker`` (the engine on its own
QThread) -> ``core`` (pure torch/numpy maths, no Qt).
"""

__version__ = "0.1.0"
