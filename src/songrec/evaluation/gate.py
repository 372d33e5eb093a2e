"""The promotion gate: may a candidate replace the champion?

For every gated metric (params.yaml evaluate.promotion.tolerances) the candidate must pass two
checks, measured on the same evaluation data:
- against the champion, paired: the 95% bootstrap interval of candidate - champion must stay
  above -tolerance (it may be worse by less than the tolerance, not more, with 95% confidence);
- against the best champion seen on this data (the high-water mark): its point estimate must be
  within one tolerance of it. Each promotion may lose up to a tolerance against the one before,
  but losses cannot add up: ten steps of 0.9 tolerance each lose at most one tolerance in all.
A difference whose interval holds 0 is "not significantly different": the candidate passes
(it is not worse beyond the tolerance) and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from songrec.evaluation.bootstrap import Evidence, paired_difference


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    tolerance: float
    candidate: float
    champion: float | None
    difference: float | None  # candidate - champion
    low: float | None  # the 95% interval of the difference
    high: float | None
    best_seen: float | None
    passed: bool
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    metrics: tuple[MetricVerdict, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "metrics": [m.as_dict() for m in self.metrics]}


def gate(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    tolerances: dict[str, float],
    *,
    candidate_evidence: Evidence | None = None,
    champion_evidence: Evidence | None = None,
    best_seen: dict[str, float] | None = None,
    seed: int = 0,
) -> GateDecision:
    """Decide on the point metrics of both, and on the evidence of both when there is (paired
    bootstrap); without the champion's evidence the difference is judged on points alone."""
    if champion is None:
        return GateDecision(True, "no champion yet", ())
    best_seen = best_seen or {}
    verdicts = []
    for offset, (metric, tolerance) in enumerate(tolerances.items()):
        verdicts.append(
            _verdict(
                metric,
                tolerance,
                candidate[metric],
                champion[metric],
                best_seen.get(metric),
                candidate_evidence,
                champion_evidence,
                seed + offset,
            )
        )
    failed = [v for v in verdicts if not v.passed]
    if failed:
        return GateDecision(False, "; ".join(f"{v.metric}: {v.verdict}" for v in failed), tuple(verdicts))
    return GateDecision(True, "; ".join(f"{v.metric}: {v.verdict}" for v in verdicts), tuple(verdicts))


def _verdict(
    metric: str,
    tolerance: float,
    candidate: float,
    champion: float,
    best_seen: float | None,
    candidate_evidence: Evidence | None,
    champion_evidence: Evidence | None,
    seed: int,
) -> MetricVerdict:
    if candidate_evidence is not None and champion_evidence is not None:
        difference = paired_difference(candidate_evidence, champion_evidence, metric, seed=seed)
        point, low, high = difference.point, difference.low, difference.high
    else:  # the champion cannot be measured on this data: its own logged figure, no interval
        point, low, high = candidate - champion, candidate - champion, candidate - champion
    interval = f"{point:+.4f} [{low:+.4f}, {high:+.4f}]"
    if low < -tolerance:
        verdict, passed = f"worse than the champion beyond {tolerance} ({interval})", False
    elif best_seen is not None and candidate < best_seen - tolerance:
        verdict = f"{candidate:.4f} is more than {tolerance} below the best champion seen ({best_seen:.4f})"
        passed = False
    elif low > 0:
        verdict, passed = f"better than the champion ({interval})", True
    elif high < 0:
        verdict, passed = f"worse than the champion, within {tolerance} ({interval})", True
    else:
        verdict, passed = f"not significantly different from the champion ({interval})", True
    return MetricVerdict(metric, tolerance, candidate, champion, point, low, high, best_seen, passed, verdict)


def raised_high_water(
    best_seen: dict[str, float], measured: dict[str, float], metrics: list[str]
) -> dict[str, float]:
    """The best seen on this data after a champion measuring `measured` serves."""
    return {m: max(best_seen.get(m, measured[m]), measured[m]) for m in metrics}
