"""Module names: the folded form that catches look-alikes."""

from __future__ import annotations

_LOOK_ALIKES = str.maketrans({"0": "o", "1": "l", "i": "l"})


def fold_name(name: str) -> str:
    """`registry-core`, `registrycore`, `reg1stry-core` and `registry-c0re` fold alike.

    Hyphens are dropped and characters that read alike are folded (0/o, 1/l/i), so another
    company cannot publish a name that passes for an existing one (manifest.md).
    Migration 0002 applies the same folding in SQL.
    """
    return name.lower().replace("-", "").translate(_LOOK_ALIKES)
