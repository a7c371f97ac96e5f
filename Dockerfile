# syntax=docker/dockerfile:1
# The crossing-monitor image: the `crossing-monitor` command (worker, simulate, record, replay,
# analyze, dashboards push) on a slim Python, run as an unprivileged user.
#
#   docker build -t crossing-monitor:0.1.0 .
#   docker run --rm crossing-monitor:0.1.0 --help
#
# docker-compose.yml builds it for the whole monitor; deploy/README.md has the rest.
# The Python minor version is the one the project is developed and tested on.
ARG PYTHON_VERSION=3.11
# The official Rust image lends its toolchain to the stage that compiles native/ (nothing else of it).
ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-slim AS rust

# ---- native: the compiled fold (native/, Rust + pyo3) as a wheel for the image's Python --------
# Built on the image's own Python, so the wheel's tag and pyo3's view of the interpreter are the
# runtime's; only native/ is copied in, so a change to the Python code does not recompile it.
FROM python:${PYTHON_VERSION}-slim AS native

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH

# rustc links with the system C compiler, as in the Rust image itself.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
WORKDIR /src
COPY native/ native/
# pip fetches maturin (the crate's build backend) and builds the release wheel into /wheels.
RUN pip wheel --no-deps --wheel-dir /wheels ./native \
    && ls /wheels/crossing_monitor_native-*.whl

# ---- build: the project, its dependencies and the compiled fold into a virtual environment ------
FROM python:${PYTHON_VERSION}-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/crossing-monitor
WORKDIR /src
# What `pip install .` reads (see .dockerignore): the packages, pyproject.toml, README.md (and native/).
COPY . .
COPY --from=native /wheels /wheels
RUN /opt/crossing-monitor/bin/pip install . \
    && /opt/crossing-monitor/bin/pip install --no-deps /wheels/crossing_monitor_native-*.whl \
    && /opt/crossing-monitor/bin/crossing-monitor --version \
    && /opt/crossing-monitor/bin/python -c "import crossing_monitor_native"

# ---- runtime ---------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim

LABEL org.opencontainers.image.title="crossing-monitor" \
      org.opencontainers.image.description="Real-time monitor for land-border crossing ports"

ENV PATH=/opt/crossing-monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The user the monitor runs as; /var/lib/crossing-monitor holds worker data directories (mount a
# volume there: a new named volume takes over this ownership).
RUN groupadd --system --gid 10001 crossing \
    && useradd --system --uid 10001 --gid crossing --home-dir /var/lib/crossing-monitor \
       --no-create-home --shell /usr/sbin/nologin crossing \
    && install -d -m 0750 -o crossing -g crossing /var/lib/crossing-monitor

COPY --from=build /opt/crossing-monitor /opt/crossing-monitor

USER 10001:10001
WORKDIR /var/lib/crossing-monitor

# The worker's HTTP port (/api/ports, /metrics, /healthz, wall display) unless --web-port says otherwise.
EXPOSE 6066

ENTRYPOINT ["crossing-monitor"]
CMD ["--help"]
