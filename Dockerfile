# syntax=docker/dockerfile:1
#
# IronLB images: one per component, from one build.
#
#   docker build --target controller -t ghcr.io/ironlb/controller:0.1.0 .
#   docker build --target speaker    -t ghcr.io/ironlb/speaker:0.1.0 .
#   docker build --target gateway    -t ghcr.io/ironlb/gateway:0.1.0 .
#
# NOTE: this Dockerfile has never been built here. The development machines have no
# Docker engine (no container runtime at all: everything is tested as plain processes
# against the embedded API server and in network namespaces). It is kept deliberately
# simple so that it is easy to check by reading: one builder stage, static musl
# binaries, distroless runtime images, nothing else.
#
# Multi-arch: the builder targets its own architecture (`uname -m`), so
# `docker buildx build --platform linux/amd64,linux/arm64` builds each platform in its
# own (emulated) builder; no cross toolchain needed.

# === builder: static binaries ===
FROM rust:1-bookworm AS builder
# musl-tools: the C and assembly parts of ring (rustls' crypto) need a musl C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# The whole workspace: cargo needs every member's manifest to load it (.dockerignore
# keeps target/, .git and local tools out of the context).
COPY . .
# BuildKit cache mounts keep the registry and target directory between builds.
# Cargo.lock is used when present (not --locked: it is not committed yet).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    cargo build --release --target "$target" \
      -p ironlb-controller -p ironlb-speaker -p ironlb-gateway; \
    mkdir -p /out; \
    for b in ironlb-controller ironlb-speaker ironlb-gateway; do \
      cp "target/$target/release/$b" /out/; \
    done

# === controller: non-root, no capabilities ===
FROM gcr.io/distroless/static-debian12:nonroot AS controller
COPY --from=builder /out/ironlb-controller /usr/local/bin/ironlb-controller
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/ironlb-controller"]

# === gateway: non-root, no capabilities (listens on 8080/8443; the Service maps 80/443) ===
FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=builder /out/ironlb-gateway /usr/local/bin/ironlb-gateway
USER 65532:65532
EXPOSE 8080 8443 9090
ENTRYPOINT ["/usr/local/bin/ironlb-gateway"]

# === speaker: root with CAP_NET_RAW only ===
# Raw ARP/NDP sockets need CAP_NET_RAW. A non-root process only keeps an added
# capability as an ambient capability, which neither the Pod API nor this image can
# grant (file capabilities would need privilege escalation, which the chart forbids).
# So this image runs as UID 0, and the chart's securityContext drops every capability
# except NET_RAW, forbids privilege escalation and mounts the root filesystem read-only.
FROM gcr.io/distroless/static-debian12 AS speaker
COPY --from=builder /out/ironlb-speaker /usr/local/bin/ironlb-speaker
USER 0:0
EXPOSE 9090 7950/udp
ENTRYPOINT ["/usr/local/bin/ironlb-speaker"]
