# syntax=docker/dockerfile:1
# The mq-sim campaign image (docs/simulator.md "Campaigns on many machines"):
# a statically linked mq-sim on a distroless base, nothing else.
#
#   docker build --build-arg MQ_SIM_GIT_DESCRIBE="$(git describe --always --dirty --tags)" -t mq-sim .
#   docker run --rm -v "$PWD/results:/results" mq-sim \
#     run --seeds 1000 --start-seed 1000000 --jobs 2 --shard 0/4 --json /results/shard-0.json

# --- build: the toolchain of rust-version or later, the binary linked statically
# against glibc (crt-static on the gnu target; mq-sim resolves no names, so
# glibc's static-linking caveats about NSS do not apply).
FROM rust:1.95-bookworm AS build
ARG MQ_SIM_GIT_DESCRIBE=unknown
ENV MQ_SIM_GIT_DESCRIBE=${MQ_SIM_GIT_DESCRIBE} \
    RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p mq-sim --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/mq-sim /mq-sim \
 && /mq-sim --version

# --- run: no shell, no libc needed, an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /mq-sim /usr/local/bin/mq-sim
WORKDIR /results
ENTRYPOINT ["/usr/local/bin/mq-sim"]
CMD ["--help"]
