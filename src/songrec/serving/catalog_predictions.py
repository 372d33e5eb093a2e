"""The genre probabilities and the popularity of every catalog track under one model, computed
once per loaded bundle.

A call of the genre or popularity model has a fixed cost whatever the number of rows (it walks
hundreds of trees one call at a time; bench/stream.py measures it), then a small cost per row.
A track of the catalog always gets the same prediction from the same model, so the stream scorer computes
them all once, in chunks, when a model is loaded (before it is swapped in). Entries that name
catalog tracks are then answered by look-ups, and only tracks given by their features go through
the models. The numbers are the models' own: a prediction does not depend on the other rows of
its call.

Keyed by the bundle object, weakly: the predictions of a model that no longer serves go with it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from songrec.models.bundle import SongrecBundle

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000  # rows per model call while computing (bounds the memory of one call)

_cache: weakref.WeakKeyDictionary[SongrecBundle, CatalogPredictions] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class CatalogPredictions:
    genre: np.ndarray  # the predicted genre of each catalog track (str)
    probabilities: np.ndarray  # (tracks, genres): each genre's probability, in bundle.genres order
    popularity: np.ndarray  # the predicted popularity, 0 to 100


def catalog_predictions(bundle: SongrecBundle) -> CatalogPredictions:
    """The bundle's catalog predictions, computed on first use."""
    found = _cache.get(bundle)  # no lock: scoring never waits while a new model's are computed
    if found is not None:
        return found
    with _lock:
        found = _cache.get(bundle)
        if found is None:
            found = _compute(bundle)
            _cache[bundle] = found
        return found


def _compute(bundle: SongrecBundle) -> CatalogPredictions:
    started = time.perf_counter()
    columns = [f"p_{genre}" for genre in bundle.genres]
    genres, probabilities, popularity = [], [], []
    for start in range(0, len(bundle.catalog), CHUNK_ROWS):
        part = bundle.catalog.iloc[start : start + CHUNK_ROWS]
        predicted = bundle.predict_genre(part)
        genres.append(predicted["genre"].to_numpy(dtype=object))
        probabilities.append(predicted[columns].to_numpy(dtype=np.float64))
        popularity.append(np.asarray(bundle.predict_popularity(part), dtype=np.float64))
    empty = not genres
    result = CatalogPredictions(
        genre=np.empty(0, dtype=object) if empty else np.concatenate(genres),
        probabilities=np.empty((0, len(columns))) if empty else np.vstack(probabilities),
        popularity=np.empty(0) if empty else np.concatenate(popularity),
    )
    log.info(
        "predicted the genre and popularity of the %d catalog tracks in %.1f s",
        len(bundle.catalog),
        time.perf_counter() - started,
    )
    return result
