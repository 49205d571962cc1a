# oidc-discovery-provider on an empty image: a static binary from scripts/build, run as
# uid and gid 65532 (distroless's "nonroot"). Build from the repository root:
#
#   VERSION=v1.2.0 scripts/build dist
#   docker build -f deploy/docker/oidc-discovery-provider.Dockerfile -t spiffekit/oidc-discovery-provider:v1.2.0 dist
#
# The context is the directory scripts/build wrote; only the binary is copied.
FROM scratch
COPY oidc-discovery-provider /usr/local/bin/oidc-discovery-provider
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/oidc-discovery-provider"]
