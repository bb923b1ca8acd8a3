"""Seeds, devices and cores: the global state a lesson touches, set or read in one place."""

from __future__ import annotations

import os
import random

import numpy as np

from recsuite.core import checks
from recsuite.core.optional import require


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global generator and torch (CPU and CUDA).

    Library code takes an explicit ``seed``/``rng`` instead; this is for third-party code (RecBole,
    torch initialisers) that draws from the global generators. It does not set ``PYTHONHASHSEED``:
    that variable is read only at interpreter start-up, so setting it here could not affect the
    running process (set it in the environment before launching Python if str hashing must repeat).

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    seed = checks.seed("seed", seed)
    random.seed(int(seed))
    np.random.seed(int(seed))
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding should not be what fails
        return
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the OS has one (a container or ``taskset``
    often allows fewer than the machine has), else ``os.cpu_count()``; at least 1.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_device(device="auto"):
    """A ``torch.device`` from ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda[:n]"``, ``"mps"``
    or a ``torch.device``: the one device rule of the package.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    torch = require("torch", "text")

    if isinstance(device, torch.device):
        return device  # already a device: used as given
    if not isinstance(device, str):
        raise TypeError(
            f"device must be 'auto', 'cpu', 'cuda[:n]', 'mps' or a torch.device, got {checks.describe(device)}"
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = device.partition(":")
    if kind not in {"cpu", "cuda", "mps"} or (index and not index.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:n]' or 'mps', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} was asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch.backends.mps is not available")
    return torch.device(device)
