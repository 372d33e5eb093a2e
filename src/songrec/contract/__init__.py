"""The data contract: the schema of the source data (config/schema.yaml) as types, its pure
validation core, and the features derived from it.
"""
