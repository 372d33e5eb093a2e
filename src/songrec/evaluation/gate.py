"""The promotion rule: promote unless a gated metric is worse than the champion's beyond its tolerance."""

from __future__ import annotations


def promotion_decision(
    challenger: dict[str, float], champion: dict[str, float] | None, tolerances: dict[str, float]
) -> tuple[bool, str]:
    """Promote unless a gated metric is worse than the champion's by more than its tolerance."""
    if champion is None:
        return True, "no champion yet"
    worse = [
        f"{name} {challenger[name]:.4f} < champion {champion[name]:.4f} - {tolerance}"
        for name, tolerance in tolerances.items()
        if challenger[name] < champion[name] - tolerance
    ]
    if worse:
        return False, "worse than the champion: " + "; ".join(worse)
    return True, "not worse than the champion on " + ", ".join(tolerances)
