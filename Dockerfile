# syntax=docker/dockerfile:1
# The image the Helm chart (helm/rivulet) runs: one rivulet binary, as a
# non-root user (uid 65532) on Debian bookworm-slim.
#
# Your own application (a crate with rivulet as a dependency and a binary,
# src/main.rs or src/bin/<name>.rs): copy this Dockerfile and .dockerignore
# to the root of your crate (or workspace) and name the binary:
#
#   docker build --build-arg BIN=orders-enricher -t registry.example.com/team/orders-enricher:1.0.0 .
#
# In a workspace, add --build-arg PACKAGE=<member> when the binary's name
# is not unique. rivulet must be reachable from the build: a git
# dependency (rivulet = { git = "...", tag = "..." }; it is then compiled
# in the dependency layer too), or a path dependency that is a member of
# your workspace inside the build context (cargo-chef keeps the manifests
# of workspace members only; a path outside the context, such as
# ../rivulet, is not sent to the builder at all).
# In this repository, one of the examples instead:
#
#   docker build -t registry.example.com/team/wordcount:0.1.0 .
#   docker build --build-arg EXAMPLE=csv_to_json -t registry.example.com/team/csv-to-json:0.1.0 .
#
# Dependencies are compiled in a layer of their own with cargo-chef: the
# `planner` stage reduces the sources to a recipe (Cargo.toml files,
# Cargo.lock, an empty stub for every target), the `builder` stage compiles
# every dependency from the recipe alone (RocksDB and librdkafka from C/C++
# sources: 15 to 20 minutes on two cores) and only then copies the sources.
# The dependency layer is rebuilt only when the manifests or the lock file
# change, and it is an ordinary image layer, so `docker build --cache-from`
# / `--cache-to` (a registry or CI cache) carry it between machines, which
# BuildKit cache mounts do not. (A dummy main.rs in place of the sources
# does the same for one simple crate, but breaks on workspaces, path
# dependencies and declared targets such as this repository's [[test]]
# and [[example]] entries, which cargo-chef stubs out.)
#
# At run time the binary reads /etc/rivulet/rivulet.toml (RIVULET_CONFIG;
# the chart mounts its ConfigMap there) and RIVULET__SECTION__KEY variables,
# keeps its state under /var/lib/rivulet and serves /metrics and the health
# endpoints on port 8080.

FROM rust:1-bookworm AS chef
# What the native dependencies need to build: the build part of ./dev's
# package list (rust:1-bookworm has g++ and make already).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake clang libclang-dev libssl-dev zlib1g-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG BIN=""
ARG PACKAGE=""
ARG EXAMPLE=wordcount
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: cached until Cargo.toml or Cargo.lock changes.
RUN if [ -n "$BIN" ]; then targets="--bin $BIN"; else targets="--examples"; fi \
    && cargo chef cook --release --locked ${PACKAGE:+--package "$PACKAGE"} $targets --recipe-path recipe.json
COPY . .
RUN if [ -n "$BIN" ]; then \
        cargo build --release --locked ${PACKAGE:+--package "$PACKAGE"} --bin "$BIN" \
        && cp "target/release/$BIN" /usr/local/bin/rivulet-app; \
    else \
        cargo build --release --locked --example "$EXAMPLE" \
        && cp "target/release/examples/$EXAMPLE" /usr/local/bin/rivulet-app; \
    fi

FROM debian:bookworm-slim
# OpenSSL and zlib are linked dynamically (librdkafka's TLS and gzip);
# RocksDB, zstd and lz4 are linked in. libstdc++ is RocksDB's C++ runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 65532 rivulet \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rivulet \
    && mkdir -p /etc/rivulet /var/lib/rivulet \
    && printf '%s\n' \
        '# Replaced by the Helm chart ConfigMap; RIVULET__SECTION__KEY variables override it.' \
        'state_dir = "/var/lib/rivulet"' > /etc/rivulet/rivulet.toml \
    && chown 65532:65532 /var/lib/rivulet
COPY --from=builder /usr/local/bin/rivulet-app /usr/local/bin/rivulet-app
ENV RIVULET_CONFIG=/etc/rivulet/rivulet.toml
WORKDIR /var/lib/rivulet
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/rivulet-app"]
