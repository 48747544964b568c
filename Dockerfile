# ShardGate container image.
#
# NOTE: not built in ShardGate's own CI or dev machines (they have no Docker engine); the file is
# kept for users. `docker build -t shardgate .` then `docker run -v $PWD/shardmap.json:/etc/shardgate/shardmap.json
# -p 6432:6432 -p 9930:9930 shardgate --map /etc/shardgate/shardmap.json --listen 0.0.0.0:6432 --admin 0.0.0.0:9930`.
# docker-compose.yml runs it in front of a 2-shard PostgreSQL cluster.

# ---- build stage -------------------------------------------------------------------------------
# Debian 12 based, like the runtime stage, so libpg_query/libpq come from the same release.
ARG SWIFT_IMAGE=swift:6.1-bookworm
FROM ${SWIFT_IMAGE} AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends libpg-query-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Manifest first: the dependency fetch is cached until Package.swift changes.
COPY Package.swift ./
RUN swift package resolve

COPY Sources ./Sources
# Test targets are declared in Package.swift; SwiftPM wants their folders to exist.
COPY Tests ./Tests
# Static Swift runtime and Foundation: the runtime image needs no Swift toolchain.
RUN swift build -c release --product shardgate --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/shardgate" /out/shardgate

# ---- runtime stage -----------------------------------------------------------------------------
FROM debian:bookworm-slim

# libpg-query1504.0: PostgreSQL's parser (libpg_query.so.1504.0); libpq5: libpq;
# ca-certificates/tzdata: TLS to backends and time zone names.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpg-query1504.0 libpq5 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin shardgate

COPY --from=build /out/shardgate /usr/local/bin/shardgate

USER shardgate
EXPOSE 6432 9930
# SIGTERM (docker stop) makes ShardGate stop accepting and let transactions finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["shardgate", "serve"]
CMD ["--map", "/etc/shardgate/shardmap.json", "--listen", "0.0.0.0:6432", "--admin", "0.0.0.0:9930"]
