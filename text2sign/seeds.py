"""Seeds derived from keys, so that every random draw is a pure function of what it is for."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(*key: int | str) -> int:
    """A 63-bit seed from a key of ints and strings (strings by their SHA-256)."""
    words = [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little")
             if isinstance(k, str) else int(k) for k in key]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


def generator(*key: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded by `derive_seed(*key)`."""
    return torch.Generator(device).manual_seed(derive_seed(*key))
