# spiffe-server on an empty image: a static binary from scripts/build, run as
# uid and gid 65532 (distroless's "nonroot"). Build from the repository root:
#
#   VERSION=v1.2.0 scripts/build dist
#   docker build -f deploy/docker/spiffe-server.Dockerfile -t spiffekit/spiffe-server:v1.2.0 dist
#
# The context is the directory scripts/build wrote; only the binary is copied.
FROM scratch
COPY spiffe-server /usr/local/bin/spiffe-server
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/spiffe-server"]
