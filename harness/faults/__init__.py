"""Faults: the timeline planned from the scenario (``timeline``) and their injection with undo (``inject``)."""
