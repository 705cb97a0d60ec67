"""The monolith: system of record (users, auth, profile, catalog, history) and the legacy WOD."""

__version__ = "0.1.0"
