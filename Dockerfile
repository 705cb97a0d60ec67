# syntax=docker/dockerfile:1.7
# One build, five images: `--target monolith`, `--target coach`, `--target billing`,
# `--target realtime` (event streams and live groups) and `--target sandbox` (the sandbox
# payment provider: development and tests only). NATS runs from its official image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the pinned dependencies and the project, no dev tools ---------
FROM ${PYTHON_IMAGE} AS build
ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_NO_CACHE_DIR=1
RUN pip install --disable-pip-version-check "uv==0.13.8"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY fitcore ./fitcore
COPY fitrules ./fitrules
COPY monolith ./monolith
COPY coach ./coach
COPY billing ./billing
COPY realtime ./realtime
COPY sandboxpay ./sandboxpay
COPY gen ./gen
RUN uv sync --frozen --no-dev --no-editable

# --- runtime: the virtualenv only, as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 fitco \
    && useradd --system --uid 10001 --gid fitco --no-create-home --shell /usr/sbin/nologin fitco
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FITCO_ENV=production \
    FITCO_LOG_FORMAT=json \
    FITCO_DATA_DIR=/tmp/fitco
WORKDIR /tmp
USER 10001:10001

# Keys and passwords are never baked in: they come from mounted secrets at run time
# (FITCO_JWT_PRIVATE_KEY_FILE, FITCO_JWT_PUBLIC_KEY_FILE, FITCO_BOOTSTRAP_KEY_FILE,
# FITCO_DATABASE_PASSWORD_FILE, FITCO_BILLING_DATABASE_PASSWORD_FILE, FITCO_WEBHOOK_SECRET_FILE,
# FITCO_PROVIDER_API_KEY_FILE, FITCO_SERVICE_PRIVATE_KEY_FILE,
# FITCO_REALTIME_DATABASE_PASSWORD_FILE). FITCO_ENV=production refuses to generate them.

FROM runtime AS monolith
ENV FITCO_MONOLITH_ADDR=0.0.0.0:50051 \
    FITCO_MONOLITH_METRICS_PORT=9464 \
    FITCO_MONOLITH_METRICS_HOST=0.0.0.0
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "fitcore.healthcheck", "127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "monolith"]
CMD ["serve"]

FROM runtime AS coach
ENV FITCO_COACH_ADDR=0.0.0.0:50061 \
    FITCO_COACH_METRICS_PORT=9464 \
    FITCO_COACH_METRICS_HOST=0.0.0.0 \
    FITCO_MONOLITH_TARGET=monolith:50051
EXPOSE 50061 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "fitcore.healthcheck", "127.0.0.1:50061", "fitco.coach.v1.CoachService"]
ENTRYPOINT ["python", "-m", "coach"]

FROM runtime AS billing
ENV FITCO_BILLING_ADDR=0.0.0.0:50071 \
    FITCO_BILLING_METRICS_PORT=9464 \
    FITCO_BILLING_METRICS_HOST=0.0.0.0
EXPOSE 50071 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "fitcore.healthcheck", "127.0.0.1:50071", "fitco.billing.v1.BillingService"]
ENTRYPOINT ["python", "-m", "billing"]
CMD ["serve"]

# Event streams and live group sessions (asyncio): many long-lived streams per process.
FROM runtime AS realtime
ENV REALTIME_ADDR=0.0.0.0:50081 \
    REALTIME_METRICS_PORT=9464 \
    REALTIME_METRICS_HOST=0.0.0.0
EXPOSE 50081 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "fitcore.healthcheck", "127.0.0.1:50081", "fitco.events.v1.EventService"]
ENTRYPOINT ["python", "-m", "realtime"]
CMD ["serve"]

# A stand-in for a payment provider (test cards, signed webhooks): never in production.
FROM runtime AS sandbox
ENV FITCO_SANDBOX_ADDRESS=0.0.0.0:8090
EXPOSE 8090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "fitcore.healthcheck", "http://127.0.0.1:8090/health"]
ENTRYPOINT ["python", "-m", "sandboxpay"]
CMD ["serve"]
