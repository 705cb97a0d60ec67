"""The naming convention of constraints and indexes, for every service's models and migrations
(names matter to migrations that later drop or alter them). CHECK constraints are always named
explicitly, "ck_<table>_<what>": a `constraint_name` token here would rename the explicit
names of older migrations on fresh databases."""

from __future__ import annotations

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}
