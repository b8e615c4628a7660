# syntax=docker/dockerfile:1
# The llmgw gateway: `llmgw serve` (proxy, dashboards, /metrics) as a non-root user.
#
#   docker build -t llmgw .                                   # with the Redis client (shared state)
#   docker build --build-arg EXTRAS=redis,semantic -t llmgw:semantic .   # + the semantic cache (torch, CPU)
#
# The policy is read from /etc/llmgw/policies/live.yaml (mount a directory there: a ConfigMap in
# Kubernetes, so edits reach the running gateway without a restart) and everything the gateway
# writes goes to /var/lib/llmgw (a volume). docs/deploy.md explains each setting.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=redis
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY llmgw_kernel ./llmgw_kernel
COPY dashboards ./dashboards
# torch is pinned to its CPU build in constraints.txt; --extra-index-url lets pip find it there
RUN python -m venv /opt/llmgw \
 && /opt/llmgw/bin/pip install --extra-index-url https://download.pytorch.org/whl/cpu \
      -c constraints.txt ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
ARG UID=10001
LABEL org.opencontainers.image.title="llmgw" \
      org.opencontainers.image.description="LLM gateway with replayable policies"
RUN useradd --system --uid "${UID}" --user-group --home-dir /var/lib/llmgw --create-home --shell /usr/sbin/nologin llmgw \
 && mkdir -p /etc/llmgw/policies \
 && chown llmgw:llmgw /etc/llmgw/policies
COPY --from=build /opt/llmgw /opt/llmgw
ENV PATH=/opt/llmgw/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1
WORKDIR /var/lib/llmgw
USER ${UID}
EXPOSE 8000
VOLUME ["/var/lib/llmgw"]
# liveness only (the process answers); readiness (/health: policy, log, Redis) is the orchestrator's probe
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["llmgw", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8000", "--policy", "/etc/llmgw/policies/live.yaml", "--data-dir", "/var/lib/llmgw/data", "--drain-timeout", "30"]
