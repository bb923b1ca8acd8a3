"""The course's own machinery: artefacts one lesson leaves for the next, stored choices, the results leaderboard,
the notebook runner and the noise-floor checks. A library user does not need it.
"""
