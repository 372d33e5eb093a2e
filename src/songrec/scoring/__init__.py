"""Scoring beyond HTTP: playlists and tracks scored offline with a registered model (songrec batch)."""
