# spiffe-agent on an empty image: a static binary from scripts/build, run as
# uid and gid 65532 (distroless's "nonroot"). Build from the repository root:
#
#   VERSION=v1.2.0 scripts/build dist
#   docker build -f deploy/docker/spiffe-agent.Dockerfile -t spiffekit/spiffe-agent:v1.2.0 dist
#
# The context is the directory scripts/build wrote; only the binary is copied.
FROM scratch
COPY spiffe-agent /usr/local/bin/spiffe-agent
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/spiffe-agent"]
