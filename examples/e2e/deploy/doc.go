// Package deploy holds the tests of the deployment files under deploy/ at
// the repository's root: the container images of deploy/docker, built
// from scripts/build's static binaries and run by a real dockerd as
// non-root; the systemd units of deploy/systemd, checked by
// systemd-analyze; and the manifests of deploy/kubernetes, applied to a
// real API server (internal/testing/kubetest). Each skips when its real
// component is missing, except in CI.
package deploy
