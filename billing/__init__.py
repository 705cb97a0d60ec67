"""The billing service: plans, checkout through a payment provider, subscriptions, webhooks,
renewals and the entitlements a plan grants. Its own process and its own database (a SQLite
file by default, PostgreSQL via BILLING_DATABASE_URL), never the monolith's."""

__version__ = "0.1.0"
