"""Tracking: MLflow (local, any server, DagsHub), the model registry and its aliases, the champion
model source, the promotion gate, promotion history and rollback.
"""
