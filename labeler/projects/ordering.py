"""Moving one row of an ordered list (label sets, classes) up or down: one rule for both."""

from __future__ import annotations


def swap_neighbour(ordered: list[int], pk: int, direction: str, name: str, noun: str
                   ) -> list[int]:
    """``ordered`` with ``pk`` swapped with its neighbour above ("up") or below ("down");
    ValueError (shown to the lead) for another direction or a move past either end."""
    if direction not in ("up", "down"):
        raise ValueError(f"Move a {noun} up or down.")
    i = ordered.index(pk)
    j = i - 1 if direction == "up" else i + 1
    if not 0 <= j < len(ordered):
        raise ValueError(f"{name} is already {'first' if direction == 'up' else 'last'}.")
    ordered = list(ordered)
    ordered[i], ordered[j] = ordered[j], ordered[i]
    return ordered
