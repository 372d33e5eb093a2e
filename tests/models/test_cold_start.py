"""Cold start: new artists' tracks go to models that read audio and title, not the artist."""

from __future__ import annotations

import numpy as np
import pandas as pd

from songrec.models.bundle import SongrecBundle
from songrec.models.cold_start import ColdStartRouted, TitleText, title_texts
from songrec.models.predictors import model_inputs


def _known_tracks(bundle: SongrecBundle, n: int = 60) -> pd.DataFrame:
    known = bundle.genre_model.known_artists
    tracks = bundle.catalog[bundle.catalog["track_artist"].isin(known)]
    return tracks.sample(min(n, len(tracks)), random_state=5).reset_index(drop=True)


def test_known_artists_get_the_warm_answer_and_new_ones_the_cold_or_blended_one(
    bundle: SongrecBundle,
) -> None:
    genre, popularity = bundle.genre_model, bundle.popularity_model
    assert isinstance(genre, ColdStartRouted) and isinstance(popularity, ColdStartRouted)
    known = model_inputs(_known_tracks(bundle), bundle.numeric_features)
    np.testing.assert_array_equal(genre.predict_proba(known), genre.warm.predict_proba(known))
    np.testing.assert_array_equal(popularity.predict(known), popularity.warm.predict(known))

    new = known.assign(track_artist="An Artist Nobody Knows")
    cold = genre.cold.predict_proba(genre.cold_inputs(new))
    expected = genre.cold_share * cold + (1 - genre.cold_share) * genre.warm.predict_proba(new)
    np.testing.assert_allclose(genre.predict_proba(new), expected)
    assert not np.allclose(genre.predict_proba(new), genre.warm.predict_proba(new))
    share, warm = popularity.cold_share, popularity.warm.predict(new)
    blended = share * popularity.cold.predict(popularity.cold_inputs(new)) + (1 - share) * warm
    np.testing.assert_allclose(popularity.predict(new), blended)

    # A batch that mixes both answers each row as it would be answered alone.
    mixed = pd.concat([known.iloc[:10], new.iloc[10:20]], ignore_index=True)
    alone = np.vstack([genre.predict_proba(mixed.iloc[[i]]) for i in range(len(mixed))])
    np.testing.assert_allclose(genre.predict_proba(mixed), alone)
    assert list(genre.predict(mixed)) == list(genre.classes_[alone.argmax(axis=1)])


def test_a_track_given_only_by_features_is_answered_from_audio_alone(bundle: SongrecBundle) -> None:
    genre = bundle.genre_model
    tracks = _known_tracks(bundle, 20)
    bare = model_inputs(tracks[list(bundle.numeric_features)], bundle.numeric_features)
    assert title_texts(bare) == [""] * len(bare)
    text_columns = genre.cold_inputs(bare)[:, len(bundle.numeric_features) :]
    np.testing.assert_array_equal(text_columns, np.tile(genre.text.blank[:-1], (len(bare), 1)))
    # The title counts for a new artist, and only then.
    named = model_inputs(tracks.assign(track_artist="An Artist Nobody Knows"), bundle.numeric_features)
    assert not np.allclose(genre.predict_proba(named), genre.predict_proba(bare))
    known = model_inputs(tracks, bundle.numeric_features)
    retitled = known.assign(track_name="Completely Different Words", track_album_name="")
    np.testing.assert_array_equal(genre.predict_proba(known), genre.predict_proba(retitled))


def test_title_features_are_held_out_by_artist_so_only_shared_words_carry_over() -> None:
    rng = np.random.default_rng(0)
    words = {"latin": "amor corazon", "edm": "remix club mix", "rap": "lil freestyle"}
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))
    rows = []
    for artist in range(90):
        genre = list(words)[artist % 3]
        private = "".join(rng.choice(letters, 7))  # a word of this artist's only
        for track in range(8):
            shared = words[genre] if track % 2 else ""
            rows.append((f"artist {artist}", genre, f"{private} {shared} {track}".strip()))
    artists, genres, texts = (np.array(column) for column in zip(*rows, strict=True))
    text = TitleText()
    held_out = text.fit_out_of_fold(list(texts), genres, rng.normal(50, 10, len(texts)), artists)
    held_out_genre = text.genres[held_out[:, :-1].argmax(axis=1)]
    in_fold_genre = text.genres[text.features(list(texts))[:, :-1].argmax(axis=1)]
    with_word = np.array([any(w in t for w in " ".join(words.values()).split()) for t in texts])
    # Fitted on every row, the private words give each artist's genre away...
    assert (in_fold_genre == genres).mean() > 0.95
    # ...held out by artist they cannot: only the shared words carry a genre to a new artist.
    assert (held_out_genre[with_word] == genres[with_word]).mean() > 0.9
    assert (held_out_genre[~with_word] == genres[~with_word]).mean() < 0.6
