# streamguard container image.
#
# Build:  docker build -t streamguard .        (or: podman build -t streamguard .)
# Demo:   docker run --rm -p 8080:8080 -p 8081:8081 -p 9090:9090 streamguard \
#           run --listen 0.0.0.0:8080 --page-listen 0.0.0.0:8081
# Real:   docker run --rm -p 8080:8080 -p 9090:9090 \
#           -v $PWD/streamguard.toml:/etc/streamguard/streamguard.toml:ro \
#           -v streamguard-state:/var/lib/streamguard streamguard
#
# The config's `state_dir` should be /var/lib/streamguard (a volume owned by
# the image's user), and its plain listeners 0.0.0.0:8080. The admin listener
# is published on 0.0.0.0:9090 through STREAMGUARD_ADMIN_LISTEN.

# --- build stage -------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when
# Cargo.toml or Cargo.lock change, not for every source edit.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo '' > src/lib.rs \
 && echo 'fn main() {}' > benches/verify.rs \
 && cargo build --release --locked --bin streamguard \
 && rm -rf src benches
# Everything the build reads (tests/dockerfile.rs builds the crate from
# exactly these paths, so a new include_bytes! cannot break the image).
COPY src ./src
COPY benches ./benches
COPY demo ./demo
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin streamguard

# --- runtime stage -----------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/streamguard streamguard \
 && mkdir -p /etc/streamguard /var/lib/streamguard \
 && chown streamguard:streamguard /var/lib/streamguard
COPY --from=build /src/target/release/streamguard /usr/local/bin/streamguard
COPY config /etc/streamguard/examples
ENV STREAMGUARD_ADMIN_LISTEN=0.0.0.0:9090
VOLUME ["/var/lib/streamguard"]
USER streamguard
EXPOSE 8080 8443 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["streamguard", "healthcheck"]
ENTRYPOINT ["streamguard"]
CMD ["run", "--config", "/etc/streamguard/streamguard.toml"]
