# syntax=docker/dockerfile:1
# The `pyxis` image: the one binary (gateway, operator, CLI) on distroless, running as non-root.
#   docker build -t REGISTRY/pyxis:TAG .
# Kubernetes: `pyxis operator` and `pyxis serve --kubernetes` (deploy/kubernetes/); the CRDs: `pyxis crd`.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target directory between builds without putting them in a layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pyxis-cli \
    && cp target/release/pyxis /usr/local/bin/pyxis \
    && mkdir -p /data

# glibc and libgcc (SQLite and ring are C/assembly linked into the binary), CA certificates, user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/pyxis /usr/local/bin/pyxis
# The default data directory, writable by the runtime user (mount a volume over it to keep state).
COPY --from=build --chown=65532:65532 /data /var/lib/pyxis
USER 65532:65532
ENV PYXIS_DATA_DIR=/var/lib/pyxis
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pyxis"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
