"""Models, one file per family; every catalogue scorer answers ``recsuite.models.base.Scorer``.

Importing a family whose optional dependencies are missing raises an ``ImportError`` naming the extra.
"""
