"""Orchestration: the stage registry, DVC and Airflow runners of its stages, `songrec airflow`,
retraining, params overrides.
"""
