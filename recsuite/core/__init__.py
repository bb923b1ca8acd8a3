"""Foundation: argument checks, the row normaliser, caches and atomic writes, paths, progress bars, device and seed.

Imports nothing else from recsuite; every other layer builds on it.
"""
