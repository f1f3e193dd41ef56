# syntax=docker/dockerfile:1
# The image the Helm chart (helm/rivulet) runs: one rivulet binary, here one
# of the examples, as a non-root user (uid 65532) on Debian bookworm-slim.
#
#   docker build -t registry.example.com/team/wordcount:0.1.0 .
#   docker build --build-arg EXAMPLE=csv_to_json -t registry.example.com/team/csv-to-json:0.1.0 .
#
# The first build compiles RocksDB and librdkafka from source (15 to 20
# minutes on two cores); the cache mounts keep them for later builds. For a
# binary of your own crate, keep both stages and build with
# `cargo build --release --bin <name>` instead.
#
# At run time the binary reads /etc/rivulet/rivulet.toml (RIVULET_CONFIG;
# the chart mounts its ConfigMap there) and RIVULET__SECTION__KEY variables,
# keeps its state under /var/lib/rivulet and serves /metrics and the health
# endpoints on port 8080.

FROM rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake clang libclang-dev libssl-dev zlib1g-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG EXAMPLE=wordcount
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --example "$EXAMPLE" \
    && cp "target/release/examples/$EXAMPLE" /usr/local/bin/rivulet-app

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
