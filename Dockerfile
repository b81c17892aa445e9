# syntax=docker/dockerfile:1
# The sink-clickhouse image: multi-stage, a small Debian runtime, non-root, the spool on
# a volume. Its build step is exactly the one the tests run (`cargo build --release -p
# sink-clickhouse --locked`). Not built in this project's CI (no Docker engine there).
#
#   docker build -t pageview/sink-clickhouse .
#   docker run -p 8080:8080 -v sink-spool:/var/lib/sink pageview/sink-clickhouse

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p sink-clickhouse --locked \
 && install -D target/release/sink-clickhouse /out/sink-clickhouse

FROM debian:bookworm-slim
# ca-certificates: HTTPS to ClickHouse Cloud; curl: the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sink --no-create-home sink \
 && install -d -o sink -g sink -m 0750 /var/lib/sink
COPY --from=build /out/sink-clickhouse /usr/local/bin/sink-clickhouse
USER 10001:10001
ENV SINK_LISTEN=0.0.0.0:8080 \
    SINK_DATA_DIR=/var/lib/sink \
    SINK_LOG_FORMAT=json
# The write-ahead spool (and the Parquet output in embedded mode): durable state.
VOLUME ["/var/lib/sink"]
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK (it uses the probes in deploy/statefulset.yaml).
HEALTHCHECK --interval=10s --timeout=2s --start-period=60s \
  CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sink-clickhouse"]
CMD ["serve"]
