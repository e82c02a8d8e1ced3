"""Where torch runs: the one rule for training and the local teacher.

"auto" (the default) takes a CUDA GPU when one is present, else Apple's MPS, else the CPU, so nothing requires
a GPU. ``STILLROOM_DEVICE`` in the environment replaces "auto" on a host (say, "cpu" on a shared GPU box); an
explicit device a run asks for wins over it. Names are checked without torch (``check_name``), so settings can be
refused before any model code is imported; availability is checked where the work runs (``pick``).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from core.domain.errors import InvalidInput

if TYPE_CHECKING:
    import torch

ENV = "STILLROOM_DEVICE"
NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
FIX = 'give "auto" (a GPU when one is present, else the CPU), "cpu", "cuda", "cuda:N" or "mps"'


def check_name(value: str | None, *, field: str = "device") -> str:
    """The device name as asked ("auto" when none), or InvalidInput naming the field and the fix."""
    name = (value or "auto").strip().lower()
    if not NAMES.fullmatch(name):
        raise InvalidInput(f"{field} {value!r} is not a device: {FIX}.", field=field)
    return name


def pick(requested: str | None = None, *, field: str = "device") -> torch.device:
    """The torch device to run on: ``requested``, else $STILLROOM_DEVICE, else the best one present."""
    import torch

    name = check_name(requested, field=field)
    if name == "auto":
        name = check_name(os.environ.get(ENV), field=ENV)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if name.startswith("cuda"):
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise InvalidInput(f"{field} {name!r}: this machine has no such CUDA GPU "
                               f"({torch.cuda.device_count()} visible); use \"auto\" or \"cpu\" here.", field=field)
    if name == "mps" and not _mps_available():
        raise InvalidInput(f"{field} 'mps': this machine has no Apple GPU; use \"auto\" or \"cpu\" here.",
                           field=field)
    return torch.device(name)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A collated batch on ``device`` (a no-op on the CPU, where collate builds it)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
