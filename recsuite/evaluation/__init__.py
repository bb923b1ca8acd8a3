"""Evaluation on arrays: ranking and beyond-accuracy metrics, the paired bootstrap, breakdowns, selection rules.

Pure functions of top-k lists and CSR matrices; the protocol (``recsuite.data``) applies them to a split.
"""
