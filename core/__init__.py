"""Stillroom's domain: governance, data, training, evaluation and monitoring.

Nothing in this package imports Streamlit; pages and the CLI are thin shells
over it.
"""
