"""Evaluation: offline metrics of a bundle (genre, popularity, playlist continuation), plots, and
the promotion rule.
"""
