"""The recommender: a playlist in, one score per catalog track out; songrec's hybrid ranker, its
re-ranker, and the baselines.
"""
