"""Plotly figure builders (pure: arrays in, figures out)."""
