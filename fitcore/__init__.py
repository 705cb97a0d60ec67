"""Cross-cutting server plumbing shared by the monolith and the coach.

Config from the environment, structured logging with request ids, domain errors mapped to rich
gRPC statuses, JWT verification and the auth interceptor, health, reflection, metrics and
graceful shutdown. Service packages depend on this package; it depends on neither of them.
"""
