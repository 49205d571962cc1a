# k8s-registrar on an empty image: a static binary from scripts/build, run as
# uid and gid 65532 (distroless's "nonroot"). Build from the repository root:
#
#   VERSION=v1.2.0 scripts/build dist
#   docker build -f deploy/docker/k8s-registrar.Dockerfile -t spiffekit/k8s-registrar:v1.2.0 dist
#
# The context is the directory scripts/build wrote; only the binary is copied.
FROM scratch
COPY k8s-registrar /usr/local/bin/k8s-registrar
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/k8s-registrar"]
