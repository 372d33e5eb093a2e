"""Genre and popularity that hold up on artists the training split has never seen.

The warm models (predictors.py) lean on the artist's and album's target encodings. For a new
artist those encodings are the training mean, and what the model learned without them is thin.
So each track is routed:

- its artist is one the training split holds: the warm model;
- its artist is new, or not given: the cold model, which reads the audio numbers and what the
  track's title and album name say (character n-grams, through a naive Bayes genre model and a
  ridge popularity model).

The text models' outputs on the training rows are fitted out of fold, with folds grouped by
artist, so in training they look as they will for a new artist. For a seeded share of the
training rows the text is blanked, so the cold model also learns to do without it: a track
given only by its features (the API takes no title) is predicted from its audio alone. Each
training row weighs 1/n^power, n its artist's training tracks: new artists are mostly small
ones. A new artist's answer can blend the cold and the warm model (`cold_share`, for popularity
a half of each). params.yaml's `train.cold_start` holds these settings and says how they were
chosen; the text models' constants below were compared on artist-grouped folds of the training
split too (naive Bayes scored as a logistic regression there, in a fraction of its time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold
from sklearn.naive_bayes import MultinomialNB

from songrec.config.params import BoostingParams, ColdStartParams
from songrec.models import flat_forest
from songrec.models.predictors import UNKNOWN, predict, predict_proba

TEXT_COLUMNS = ("track_name", "track_album_name")
TEXT_FOLDS = 5
MAX_NGRAMS = 50_000  # the most frequent character 2- to 4-grams; rarer ones add size, not skill
NB_SMOOTHING = 0.1
RIDGE_ALPHA = 3.0
LOG_FLOOR = -50.0  # the log-probability of a genre a text model could not learn


def title_texts(inputs: pd.DataFrame) -> list[str]:
    """Title and album name, lower case, as one string; empty when neither is known."""
    columns = [inputs[name].tolist() if name in inputs else [UNKNOWN] * len(inputs) for name in TEXT_COLUMNS]
    return [" | ".join(parts).lower() if any(parts) else "" for parts in zip(*columns, strict=True)]


class TitleText:
    """What a track's title and album name say of its genre (log-probabilities) and popularity."""

    blank: np.ndarray | None = None  # the features of no text at all, once fitted

    def fit_out_of_fold(
        self, texts: Sequence[str], genres: np.ndarray, popularity: np.ndarray, artists: np.ndarray
    ) -> np.ndarray:
        """Fit on every row; return each row's text features as models that never saw its
        artist give them."""
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True,
            max_features=MAX_NGRAMS, dtype=np.float32,
        )  # fmt: skip
        # Two copies of the separator keep the vocabulary from being empty in a catalog without names.
        matrix = self.vectorizer.fit_transform([*texts, " | ", " | "])[:-2]
        self.genres = np.unique(genres)
        self.genre_model = MultinomialNB(alpha=NB_SMOOTHING).fit(matrix, genres)
        self.popularity_model = Ridge(alpha=RIDGE_ALPHA).fit(matrix, popularity)
        self.blank = self.features([""])[0]
        folds = min(TEXT_FOLDS, len(np.unique(artists)))
        if folds < 2:  # one artist: nothing to hold out
            return _text_features(self.genre_model, self.popularity_model, matrix)
        held_out = np.empty((matrix.shape[0], len(self.genres) + 1))
        for fit_rows, rows in GroupKFold(folds).split(matrix, groups=artists):
            genre_model = MultinomialNB(alpha=NB_SMOOTHING).fit(matrix[fit_rows], genres[fit_rows])
            popularity_model = Ridge(alpha=RIDGE_ALPHA).fit(matrix[fit_rows], popularity[fit_rows])
            fold_features = _text_features(genre_model, popularity_model, matrix[rows])
            # A genre the fold's fitted part lacks gets the floor: as good as impossible.
            held_out[rows] = LOG_FLOOR
            held_out[rows[:, None], np.searchsorted(self.genres, genre_model.classes_)] = fold_features[
                :, :-1
            ]
            held_out[rows, -1] = fold_features[:, -1]
        return held_out

    def features(self, texts: Sequence[str]) -> np.ndarray:
        if self.blank is not None and not any(texts):  # given only by features: nothing to look up
            return np.tile(self.blank, (len(texts), 1))
        return _text_features(self.genre_model, self.popularity_model, self.vectorizer.transform(texts))


def _text_features(genre_model: MultinomialNB, popularity_model: Ridge, matrix: Any) -> np.ndarray:
    return np.column_stack([genre_model.predict_log_proba(matrix), popularity_model.predict(matrix)])


class ColdStartRouted:
    """The warm model for tracks by known artists; for the rest the cold one, or a blend of the
    two (`cold_share` of the cold answer). One estimator (`predict`, and for genre `classes_`
    and `predict_proba`) to the bundle."""

    def __init__(
        self,
        warm: Any,
        cold: Any,
        text: TitleText,
        known_artists: pd.Index,
        numeric: Sequence[str],
        cold_share: float,
    ) -> None:
        self.warm, self.cold, self.text = warm, cold, text
        self.known_artists, self.numeric, self.cold_share = known_artists, tuple(numeric), cold_share
        self.is_classifier = hasattr(cold, "classes_")
        if self.is_classifier:
            if not np.array_equal(warm.classes_, cold.classes_):
                raise ValueError("the warm and cold genre models know different genres")
            self.classes_ = warm.classes_

    def cold_inputs(self, inputs: pd.DataFrame) -> np.ndarray:
        features = self.text.features(title_texts(inputs))
        if self.is_classifier:
            features = features[:, :-1]  # the genre model does not read the popularity estimate
        return np.hstack([inputs[list(self.numeric)].to_numpy(dtype=np.float64), features])

    def known(self, inputs: pd.DataFrame) -> np.ndarray:
        return np.asarray(inputs["track_artist"].isin(self.known_artists), dtype=bool)

    def _answer(self, inputs: pd.DataFrame, warm_answer: Any, cold_answer: Any) -> np.ndarray:
        known = self.known(inputs)
        if known.all():
            return np.asarray(warm_answer(self.warm, inputs), dtype=np.float64)
        new = inputs[~known]
        answer = np.asarray(cold_answer(self.cold, self.cold_inputs(new)), dtype=np.float64)
        if self.cold_share < 1:
            warm = np.asarray(warm_answer(self.warm, new), dtype=np.float64)
            answer = self.cold_share * answer + (1 - self.cold_share) * warm
        if not known.any():
            return answer
        out = np.empty((len(inputs), *answer.shape[1:]))
        out[known], out[~known] = warm_answer(self.warm, inputs[known]), answer
        return out

    def predict_proba(self, inputs: pd.DataFrame) -> np.ndarray:
        return self._answer(inputs, predict_proba, flat_forest.predict_proba)

    def predict(self, inputs: pd.DataFrame) -> np.ndarray:
        if self.is_classifier:
            return np.asarray(self.classes_)[self.predict_proba(inputs).argmax(axis=1)]
        return self._answer(inputs, predict, flat_forest.predict)


def fit_cold_start(
    warm_genre: Any,
    warm_popularity: Any,
    params: ColdStartParams,
    boosting: tuple[BoostingParams, BoostingParams],
    numeric: Sequence[str],
    inputs: pd.DataFrame,
    genres: np.ndarray,
    popularity: np.ndarray,
    seed: int,
) -> tuple[ColdStartRouted, ColdStartRouted]:
    """Fit the cold models on the training rows and route the fitted warm models with them."""
    text = TitleText()
    artists = inputs["track_artist"].to_numpy()
    held_out = text.fit_out_of_fold(title_texts(inputs), genres, popularity, artists)
    blanked = np.random.default_rng(seed).random(len(inputs)) < params.blank_text_share
    held_out[blanked] = text.blank
    audio = inputs[list(numeric)].to_numpy(dtype=np.float64)
    genre_params, popularity_params = boosting
    # New artists are mostly small ones: weigh each training row by 1/n^power of its artist's
    # tracks, so a prolific artist does not stand for what a newcomer sounds like.
    artist_tracks = inputs.groupby("track_artist")["track_artist"].transform("size").to_numpy(dtype=float)
    weight = artist_tracks**-params.artist_weight_power
    cold_genre = HistGradientBoostingClassifier(
        **_boosting(genre_params, max_iter=params.genre_max_iter), random_state=seed
    ).fit(np.hstack([audio, held_out[:, :-1]]), genres, sample_weight=weight)
    cold_popularity = HistGradientBoostingRegressor(**_boosting(popularity_params), random_state=seed).fit(
        np.hstack([audio, held_out]), popularity, sample_weight=weight
    )
    # Sorted, not a set: a set's pickled bytes change with the process's hash seed.
    known = pd.Index(sorted(set(inputs["track_artist"]) - {UNKNOWN}))
    return (
        ColdStartRouted(warm_genre, cold_genre, text, known, numeric, params.genre_cold_share),
        ColdStartRouted(warm_popularity, cold_popularity, text, known, numeric, params.popularity_cold_share),
    )


def _boosting(params: BoostingParams, max_iter: int | None = None) -> dict[str, Any]:
    return {
        "max_iter": max_iter or params.max_iter,
        "learning_rate": params.learning_rate,
        "max_leaf_nodes": params.max_leaf_nodes,
        "l2_regularization": params.l2_regularization,
        "early_stopping": False,
    }
