"""Datasets of the paper's experiments: generated (MQAR) and loaded (LRA, WikiText)."""
