"""The pipeline stages, one module each: a pure core (typed config and DataFrames in, results out)
and a thin runner that reads inputs and writes outputs atomically.
"""
