"""L2-regularized logistic regression with weights bounded at zero where asked (L-BFGS-B)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def fit_bounded_logistic(
    examples: np.ndarray, labels: np.ndarray, c: float, non_negative: np.ndarray
) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression whose weights in `non_negative` columns stay >= 0.

    Solved with L-BFGS-B on standardized columns (scikit-learn's LogisticRegression has no
    bounds); returns weights and intercept for the raw columns.
    """
    mean = examples.mean(axis=0)
    scale = examples.std(axis=0)
    scale[scale == 0] = 1.0
    z = ((examples - mean) / scale).astype(examples.dtype, copy=False)  # float32 halves each step
    y = labels.astype(np.float64)
    n, d = z.shape

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:d], params[d]
        logits = (z @ w.astype(z.dtype)).astype(np.float64) + b  # z's own precision for the big products
        loss = (np.logaddexp(0.0, logits).sum() - y @ logits) / n + (w @ w) / (2 * c * n)
        residual = 1.0 / (1.0 + np.exp(-logits)) - y
        step = (z.T @ residual.astype(z.dtype)).astype(np.float64)
        gradient = np.append(step / n + w / (c * n), residual.sum() / n)
        return float(loss), gradient

    bounds = [(0.0, None) if flag else (None, None) for flag in non_negative]
    result = minimize(
        loss_and_gradient,
        np.zeros(d + 1),
        jac=True,
        method="L-BFGS-B",
        bounds=[*bounds, (None, None)],
    )
    weights = result.x[:d] / scale
    intercept = float(result.x[d] - (result.x[:d] * mean / scale).sum())
    return weights, intercept
