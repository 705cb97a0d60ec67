"""Plain domain code of the monolith: no gRPC in here."""
