"""Scenario files: the pydantic model (``model``), unit parsing (``units``) and the YAML loader (``loader``)."""
