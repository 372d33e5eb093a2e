"""A fitted histogram gradient boosting model's trees as flat arrays, for small batches.

scikit-learn predicts tree by tree: for every tree of every iteration it calls into Cython and
opens an OpenMP parallel region. For a batch of thousands of rows that cost is nothing; for the
one to a few rows an API request or a stream entry brings, it is almost all of the prediction
(hundreds of trees per class, each a Python call). Here all trees live in one node table and
every row walks every tree at once, one numpy step per tree level, so a small batch costs a few
dozen array operations instead of a call per tree.

The sums are taken in scikit-learn's order (the baseline, then the trees iteration by
iteration), so the raw predictions are the same numbers, not merely close ones.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

# Up to this many rows the flat walk is cheaper than scikit-learn's per-tree calls; above it
# scikit-learn's compiled, threaded loop wins and the node arrays of a walk grow with rows x trees.
SMALL_BATCH = 24


class FlatForest:
    """All trees of a fitted HistGradientBoosting model, walked level by level with numpy."""

    def __init__(self, model: Any) -> None:
        iterations = model._predictors  # [iteration][class] -> TreePredictor
        self.n_features = int(model.n_features_in_)
        self.n_classes = int(model.n_trees_per_iteration_)
        self.n_iterations = len(iterations)
        self.baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, 1, -1)
        trees = [predictor.nodes for per_class in iterations for predictor in per_class]
        if any(nodes["is_categorical"].any() for nodes in trees):
            raise ValueError("categorical splits are not supported by the flat walk")
        sizes = np.array([len(nodes) for nodes in trees], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate(trees)
        tree_of_node = np.repeat(offsets, sizes)
        is_leaf = nodes["is_leaf"].astype(bool)
        own_index = np.arange(len(nodes), dtype=np.intp)
        # A leaf points at itself, so walking every row as deep as the deepest tree is harmless.
        self.left = np.where(is_leaf, own_index, nodes["left"].astype(np.intp) + tree_of_node)
        self.right = np.where(is_leaf, own_index, nodes["right"].astype(np.intp) + tree_of_node)
        self.feature = np.where(is_leaf, 0, nodes["feature_idx"]).astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.value = nodes["value"].astype(np.float64)
        self.roots = offsets
        self.depth = int(max(int(tree["depth"].max()) for tree in trees)) if trees else 0

    def raw_predict(self, features: np.ndarray) -> np.ndarray:
        """What the model's `_raw_predict` returns: shape (rows, classes)."""
        x = np.ascontiguousarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} features per row, got shape {x.shape}")
        n_rows = x.shape[0]
        node = np.broadcast_to(self.roots, (n_rows, len(self.roots))).copy()
        flat_rows = np.arange(n_rows, dtype=np.intp)[:, None] * self.n_features
        flat_x = x.ravel()
        has_missing = bool(np.isnan(flat_x).any())
        for _ in range(self.depth):
            value = flat_x[flat_rows + self.feature[node]]
            go_left = value <= self.threshold[node]
            if has_missing:
                go_left = np.where(np.isnan(value), self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node].reshape(n_rows, self.n_iterations, self.n_classes)
        terms = np.concatenate([np.broadcast_to(self.baseline, (n_rows, 1, self.n_classes)), leaves], axis=1)
        return np.cumsum(terms, axis=1)[:, -1, :]


_FORESTS: weakref.WeakKeyDictionary[Any, FlatForest | None] = weakref.WeakKeyDictionary()


def flat_forest(model: Any) -> FlatForest | None:
    """The model's FlatForest, built on first use; None when the model can't be flattened."""
    if model in _FORESTS:
        return _FORESTS[model]
    try:
        forest: FlatForest | None = FlatForest(model)
    except (AttributeError, ValueError):  # not a fitted HGB model, or categorical splits
        forest = None
    _FORESTS[model] = forest
    return forest


def predict_proba(model: Any, features: np.ndarray) -> np.ndarray:
    """`model.predict_proba(features)` for a HistGradientBoostingClassifier."""
    forest = flat_forest(model) if len(features) <= SMALL_BATCH else None
    if forest is None:
        return np.asarray(model.predict_proba(features))
    return np.asarray(model._loss.predict_proba(forest.raw_predict(features)))


def predict(model: Any, features: np.ndarray) -> np.ndarray:
    """`model.predict(features)` for a HistGradientBoosting classifier or regressor."""
    forest = flat_forest(model) if len(features) <= SMALL_BATCH else None
    if forest is None:
        return np.asarray(model.predict(features))
    raw = forest.raw_predict(features)
    if hasattr(model, "classes_"):
        encoded = (raw.ravel() > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return np.asarray(model.classes_[encoded])
    return np.asarray(model._loss.link.inverse(raw.ravel()))
