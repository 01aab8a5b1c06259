# syntax=docker/dockerfile:1
# Wallet Hub service image.
#
#   docker build -t wallet-hub .
#   docker run --rm wallet-hub --help
#
# The release binary carries its defaults (config/default.toml) and migrations, so the
# image needs nothing else: configure it with WALLET_HUB__SECTION__KEY variables,
# DATABASE_URL and KAFKA_BROKERS. Ports: 8080 API, 9464 admin (/metrics, /health/*).

FROM rust:1.95-bookworm AS builder
# librdkafka is built from source by the rdkafka crate (cmake-build feature), with OpenSSL
# for TLS and SASL to Kafka (libssl-dev, found with pkg-config).
# Debian package versions are not pinned: the bookworm suite only takes fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and target/ between builds, so the binary is
# copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin wallet-hub \
    && install -D -m 0755 target/release/wallet-hub /out/wallet-hub

FROM debian:bookworm-slim
# ca-certificates for TLS to brokers/databases/collectors; libssl3 for librdkafka's TLS and
# SASL; curl for container health checks.
# /var/lib/wallet-hub/dev-issuer is where docker-compose.yml keeps the local development
# token issuer, on a named volume: a new volume takes the owner of the image's directory, so
# the directory exists here, owned by the service's user (otherwise it would be root's).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 wallet-hub \
    && useradd --system --uid 10001 --gid wallet-hub --home-dir /nonexistent \
       --no-create-home --shell /usr/sbin/nologin wallet-hub \
    && install -d -o wallet-hub -g wallet-hub -m 0700 /var/lib/wallet-hub/dev-issuer
COPY --from=builder /out/wallet-hub /usr/local/bin/wallet-hub
# Inside a container the servers must listen on all interfaces (the defaults are loopback).
ENV WALLET_HUB__API__LISTEN=0.0.0.0:8080 \
    WALLET_HUB__ADMIN__LISTEN=0.0.0.0:9464 \
    WALLET_HUB__LOG__FORMAT=json
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8080 9464
ENTRYPOINT ["wallet-hub"]
CMD ["serve"]
