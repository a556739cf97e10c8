"""Algorithms that measure a trained model beyond its clean score, over words and probabilities only: the
robustness probes (seeded rewrites of the test set), character edits, DeepWordBug, calibration error. Running them
on a cell is ``run/beyond``."""
