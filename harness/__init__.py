"""routebench: a benchmark and ablation harness for routing strategies in fine-tuning."""

__version__ = "0.1.0"
