"""The models: the recommenders, the genre classifier and the popularity regressor."""
