"""Where tensors live and in what precision: the one place that decides (Accelerate's ``Accelerator.device``
pattern). Everything else receives a ``Compute`` and never calls ``.cuda()`` or guesses a device."""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from harness.core.errors import BenchError
from harness.suite.specs import Precision

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA if present, else MPS, else the CPU; a named device that is not here is a ``BenchError``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise BenchError("--device mps: MPS is not available on this machine (use --device auto or cpu)")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise BenchError(f"--device {name!r}: expected {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA is not available on this machine (use --device auto or cpu)")
    index = int(match.group(1) or torch.cuda.current_device())
    if index >= torch.cuda.device_count():
        raise BenchError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them (to hand one to each worker)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [name.strip() for name in listed.split(",") if name.strip()][: torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def describe_device(device: torch.device) -> str:
    """What the record says about the hardware, e.g. ``cuda:0 (NVIDIA H200)`` or ``cpu (x86_64, 2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    return str(device)


@dataclass(frozen=True)
class Compute:
    """A device and a precision: moves batches, opens autocast, scales fp16 gradients."""

    device: torch.device
    precision: Precision = "fp32"

    @classmethod
    def named(cls, device: str, precision: Precision = "fp32") -> Compute:
        return cls(resolve_device(device), precision)

    def batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A collated CPU batch on the device; on CUDA through pinned memory, copied without blocking."""
        if self.device.type == "cpu":
            return batch
        pin = self.device.type == "cuda"
        return {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=pin) for k, v in batch.items()}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 pass through a disabled scaler."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Evaluation: no autograd bookkeeping at all, in the training precision."""
        with torch.inference_mode(), self.autocast():
            yield

    def peak_memory_mb(self) -> dict[str, Any]:
        """The accelerator's peak allocated memory since the last reset (CUDA only; the CPU's is RSS)."""
        if self.device.type != "cuda":
            return {}
        return {"peak_gpu_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)}

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
