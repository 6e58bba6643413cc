"""Evaluation: the official protocol, the result files, baselines and temporal metrics."""
