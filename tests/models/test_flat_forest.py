"""The flat walk of a boosting model's trees gives scikit-learn's numbers exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from songrec.models import flat_forest
from songrec.models.flat_forest import SMALL_BATCH, FlatForest


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int) * 2  # four classes
    x[rng.random(x.shape) < 0.15] = np.nan  # so that splits learn where missing values go
    return x, y


@pytest.fixture(scope="module")
def classifier() -> HistGradientBoostingClassifier:
    x, y = _data(600, seed=1)
    return HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=0).fit(x, y)


@pytest.fixture(scope="module")
def regressor() -> HistGradientBoostingRegressor:
    x, y = _data(600, seed=2)
    return HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(
        x, y + np.nan_to_num(x[:, 2]).clip(-1, 1)
    )


def test_raw_predictions_are_scikit_learns_exactly(classifier, regressor) -> None:
    x, _ = _data(50, seed=3)
    x[0] = np.nan  # a row with nothing known
    x[1, 0] = np.inf
    for model in (classifier, regressor):
        forest = FlatForest(model)
        assert forest.n_classes == model.n_trees_per_iteration_
        np.testing.assert_array_equal(forest.raw_predict(x), model._raw_predict(x))
        no_missing = np.nan_to_num(x)
        np.testing.assert_array_equal(forest.raw_predict(no_missing), model._raw_predict(no_missing))


def test_small_batches_take_the_flat_walk_and_answer_as_the_model(classifier, regressor) -> None:
    x, _ = _data(SMALL_BATCH + 10, seed=4)
    for rows in (x[:1], x[:SMALL_BATCH], x):  # flat, flat, scikit-learn's own loop
        np.testing.assert_array_equal(
            flat_forest.predict_proba(classifier, rows), classifier.predict_proba(rows)
        )
        np.testing.assert_array_equal(flat_forest.predict(classifier, rows), classifier.predict(rows))
        np.testing.assert_array_equal(flat_forest.predict(regressor, rows), regressor.predict(rows))
    assert flat_forest.flat_forest(classifier) is flat_forest.flat_forest(classifier)  # built once


def test_a_wrong_width_is_refused_and_categorical_models_fall_back() -> None:
    x, y = _data(300, seed=5)
    x[:, 4] = np.abs(np.nan_to_num(x[:, 4])).round() % 3
    categorical = HistGradientBoostingClassifier(max_iter=5, categorical_features=[4], random_state=0).fit(
        x, y
    )
    assert flat_forest.flat_forest(categorical) is None
    np.testing.assert_array_equal(flat_forest.predict(categorical, x[:3]), categorical.predict(x[:3]))
    plain = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(np.nan_to_num(x), y)
    with pytest.raises(ValueError, match="expected 5 features per row"):
        FlatForest(plain).raw_predict(x[:2, :4])
