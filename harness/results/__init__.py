"""Stored results: the versioned model (``model``), atomic storage (``store``), environment metadata (``env``),
questions asked of earlier runs (``query``)."""
