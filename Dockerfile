# Build: docker build -t streamguard .
# Demo:  docker run --rm -p 8080:8080 streamguard run --listen 0.0.0.0:8080 --admin-listen 0.0.0.0:9090
# Real:  docker run --rm -p 8080:8080 -p 9090:9090 -v $PWD/streamguard.toml:/etc/streamguard/streamguard.toml:ro streamguard
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY demo ./demo
RUN cargo build --release --locked --bin streamguard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 streamguard
COPY --from=build /src/target/release/streamguard /usr/local/bin/streamguard
COPY config /etc/streamguard/examples
USER streamguard
EXPOSE 8080 8443 9090
ENTRYPOINT ["streamguard"]
CMD ["run", "--config", "/etc/streamguard/streamguard.toml"]
