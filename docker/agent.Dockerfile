# Atom's image: the runtime agent (ENTRYPOINT atom-runtime) and, with `--entrypoint atom`, control.
# BuildKit is required (RUN --mount); Docker 23+ uses it by default, 20.10 with DOCKER_BUILDKIT=1.
#
# CPU (the published default: python:3.11-slim, torch's CPU wheel from download.pytorch.org):
#   DOCKER_BUILDKIT=1 docker build -f docker/agent.Dockerfile -t atom-agent:latest .
# GPU (a CUDA runtime base; PyPI's torch 2.13.0 wheel is the CUDA 13.0 build):
#   DOCKER_BUILDKIT=1 docker build -f docker/agent.Dockerfile -t atom-agent:gpu \
#     --build-arg BASE=nvidia/cuda:13.0.0-runtime-ubuntu24.04 \
#     --build-arg TORCH_VERSION=2.13.0 --build-arg TORCH_INDEX_URL= .
#
# Build arguments:
#   BASE             any Debian/Ubuntu image; python3 (>= 3.11) and python3-venv are apt-installed
#                    when it lacks them
#   TORCH_VERSION    the torch to install before the other dependencies (`+cpu`: the CPU build)
#   TORCH_INDEX_URL  an extra package index for torch; empty: PyPI only
#   WHEELS           an image whose root holds wheels to install from first (default: none); the
#                    tests import a directory of local wheels as an image and name it here
# Behind a TLS-intercepting proxy, hand pip the proxy's CA bundle as a build secret (never stored
# in a layer): --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt

ARG BASE=python:3.11-slim
ARG WHEELS=scratch

FROM ${WHEELS} AS wheels

FROM ${BASE} AS python
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/atom/venv \
    PATH=/opt/atom/venv/bin:$PATH \
    LANG=C.UTF-8
# Python 3.11+ with venv (CUDA and plain Debian/Ubuntu bases lack it), the user, /data (its
# volume in docker/compose.yaml), the venv.
RUN set -eu; \
    if ! python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --create-home --uid 10001 --user-group --shell /bin/sh atom; \
    install -d -o atom -g atom /data; \
    python3 -m venv /opt/atom/venv

# The dependency list alone: a change elsewhere in pyproject.toml (tool settings, markers)
# yields the same file, so the dependency layer below stays cached.
FROM python AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt

FROM python
ARG TORCH_VERSION=2.13.0+cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# Layer 1: pip's own tools and torch (the largest dependency; changes least often).
RUN --mount=type=bind,from=wheels,target=/wheels \
    --mount=type=secret,id=pip_cert \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    set -eu; \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    pip install --upgrade pip "setuptools>=68" wheel; \
    pip install --find-links /wheels ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
      "torch==${TORCH_VERSION}"

# Layer 2: every other dependency (torch is already satisfied).
COPY --from=requirements /tmp/requirements.txt /opt/atom/requirements.txt
RUN --mount=type=secret,id=pip_cert \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    set -eu; \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    pip install -r /opt/atom/requirements.txt

# Layer 3: the code, installed without dependencies (seconds).
COPY pyproject.toml README.md /opt/atom/src/
COPY control /opt/atom/src/control
COPY connectors /opt/atom/src/connectors
COPY runtime_agent /opt/atom/src/runtime_agent
COPY tui /opt/atom/src/tui
RUN set -eu; \
    pip install --no-deps --no-build-isolation --no-cache-dir /opt/atom/src; \
    rm -rf /opt/atom/src/build /opt/atom/src/*.egg-info; \
    atom-runtime --help >/dev/null

USER atom
WORKDIR /home/atom
ENTRYPOINT ["atom-runtime"]
CMD ["--help"]
