"""songrec: a reproducible, orchestrated, tracked, served and watched music recommender."""

__version__ = "0.1.0"
