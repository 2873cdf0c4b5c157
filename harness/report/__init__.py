"""The report layer: HTML report of one stored run and comparisons of several; reads only stored results."""

from __future__ import annotations
