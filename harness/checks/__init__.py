"""Checks: verdicts on what a run observed (history survival, recovery timeline, stability)."""
