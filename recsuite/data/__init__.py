"""Data and protocol: MovieLens loaders, features, the temporal + cold-item split, ``IndexMap``, ``Protocol``, lists to read.
"""
