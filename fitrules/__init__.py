"""Published training and energy rules shared by the monolith and the coach: pure functions and
the numbers they use, each beside its source (shared/domain-facts.md). No I/O, no gRPC servers:
plumbing lives in `fitcore`, services keep their own domain; what both need to agree on (the
calories of a set, an estimated 1RM, the user's day) is written once, here.
"""
