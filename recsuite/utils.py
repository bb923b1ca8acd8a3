"""Seeds and devices: the two pieces of global state a lesson touches, set in one place."""

from __future__ import annotations

import os
import random

import numpy as np


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's legacy global generator and torch (CPU and CUDA).

    Library code takes an explicit ``seed``/``rng`` instead; this is for third-party code (RecBole,
    torch initialisers) that draws from the global generators.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    os.environ["PYTHONHASHSEED"] = str(int(seed))
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding should not be what fails
        return
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def get_device(device: str = "auto"):
    """A ``torch.device``: ``"auto"`` picks CUDA when present, else the CPU.

    Introduced in notebooks/01_data_preprocessing.ipynb
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or device.split(":")[0] not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda[:n]' or 'mps', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device")
    return torch.device(device)
