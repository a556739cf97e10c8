"""Robustness probes: seeded rewrites of the test set, each one module registered by kind."""

# ruff: noqa: I001 (registration order)
from harness.evaluation.probes.base import ProbeParams, describe_probe, probe_name, probes

# each module registers itself on import; the order here is the order `bench list` shows
from harness.evaluation.probes import typo, word_drop

__all__ = ["ProbeParams", "describe_probe", "probe_name", "probes", "typo", "word_drop"]
