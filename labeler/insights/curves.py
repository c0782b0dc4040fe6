"""The learning curve and the version table of the dashboard: every version side by side.

Each point is a ready version. Its accuracy on audit items is read from the latest version's
comparison (labeler.training.comparison): every version scored on the same, current audit items
by a head that never saw them; a version that cannot be scored so (its backbone's embeddings
are gone, or it predates comparisons) keeps only its own number from its time, shown apart.
Every accuracy has its 95 % Wilson interval; the cross-validated one is approximate (the
out-of-fold predictions of one cross-validation, treated as independent trials).
"""

from __future__ import annotations

import numpy as np

from labeler.projects.models import Project
from labeler.training.models import ModelVersion, Status
from worker.ml.metrics import wilson_interval


def _interval(accuracy: float | None, n: int | None) -> tuple[float | None, float | None]:
    if accuracy is None or not n:
        return None, None
    low, high = wilson_interval(int(round(accuracy * n)), int(n))
    return round(low, 4), round(high, 4)


def version_points(versions: list[ModelVersion]) -> tuple[list[dict], dict | None]:
    """One dict per version (oldest first) and the comparison they were scored in (or None)."""
    comparison = None
    for v in reversed(versions):
        if v.status == Status.READY and (v.metrics or {}).get("comparison"):
            comparison = dict(v.metrics["comparison"], version=v.number)
            break
    same = {e["version"]: e for e in (comparison or {}).get("versions", [])}
    points = []
    for v in versions:
        m = v.metrics or {}
        report = m.get("cv_report") or {}
        cv_low, cv_high = _interval(m.get("cv_accuracy"), report.get("n"))
        ci = m.get("audit_ci")
        entry = same.get(v.number, {})
        points.append({
            "version": v.number,
            "status": v.status,
            "n": v.labels_used,
            "backbone": v.backbone,
            "cv": m.get("cv_accuracy"),
            "cv_low": cv_low,
            "cv_high": cv_high,
            "audit": m.get("audit_accuracy"),
            "audit_low": ci[0] if ci else None,
            "audit_high": ci[1] if ci else None,
            "audit_n": m.get("audit_n"),
            "same": entry.get("accuracy"),
            "same_low": entry["ci"][0] if entry.get("ci") else None,
            "same_high": entry["ci"][1] if entry.get("ci") else None,
            "same_n": entry.get("n"),
            "same_reason": entry.get("reason") or (
                "" if entry or comparison is None or v.status != Status.READY
                else "not in the latest comparison"
            ),
        })
    return points, comparison


def learning_curve(project: Project) -> dict:
    """Points per ready version, the comparison behind them, and the predicted random curve."""
    versions = list(project.model_versions.filter(status=Status.READY).order_by("number"))
    points, comparison = version_points(versions)
    random = None
    if versions:
        curve = (versions[-1].metrics or {}).get("random_curve")
        if curve:
            random = dict(curve)
            fit = curve.get("fit")
            max_n = max([p["n"] for p in points] + [p["n"] for p in curve["points"]])
            if fit:
                from worker.ml.evaluation import power_law

                start = curve["points"][0]["n"]
                grid = np.unique(np.geomspace(start, max(max_n, start + 1), 40).round())
                random["predicted"] = [
                    [int(n), round(float(power_law(n, fit["a"], fit["b"], fit["c"])), 4)]
                    for n in grid
                ]
    return {
        "points": points,
        "comparison": None if comparison is None else {
            "version": comparison["version"], "n": comparison["n"],
            "left_out_trained": comparison.get("left_out_trained", 0),
            "left_out_missing": comparison.get("left_out_missing", 0),
        },
        "random": random,
    }


def version_table(project: Project, limit: int = 50) -> list[dict]:
    """The newest `limit` versions (any status) with their points, newest first."""
    versions = list(project.model_versions.order_by("-number")[:limit])
    ready = list(project.model_versions.filter(status=Status.READY).order_by("number"))
    points = {p["version"]: p for p in version_points(ready)[0]}
    return [{"v": v, "point": points.get(v.number)} for v in versions]
