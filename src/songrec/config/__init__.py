"""Configuration: config/config.yaml, config/schema.yaml, params.yaml and the environment, read
once into frozen, checked dataclasses.
"""
