"""The engine: one QObject on one QThread that owns models, optimiser, sampler state and buffers.

The GUI sends it plain-data job requests (:mod:`.requests`) and live settings (:mod:`.live`); it
answers with plain-data frames (:mod:`.frames`), throttled and copied, never shared.
"""
