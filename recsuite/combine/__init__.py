"""Combining models: score fusion, the two-stage LambdaRank ranker, re-ranking for diversity and calibration."""
