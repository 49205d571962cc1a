package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/dockertest"
)

// root is the repository's root, from this package's directory.
const root = "../../.."

// programs are the programs scripts/build builds, each with its
// Dockerfile.
var programs = []string{"spiffe-server", "spiffe-agent", "spiffe-helper", "oidc-discovery-provider", "k8s-registrar"}

// build runs scripts/build for programs into a temporary directory and
// returns it.
func build(t *testing.T, env []string, programs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "scripts/build"), append([]string{dir}, programs...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "scripts/build: %s", out)
	return dir
}

// TestDockerfiles checks what every Dockerfile must say: an empty base
// image (nothing to pull, nothing but the binary), the one binary copied,
// a non-root user, and the binary as the entrypoint.
func TestDockerfiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "deploy/docker/*.Dockerfile"))
	require.NoError(t, err)
	require.Len(t, files, len(programs))
	for _, p := range programs {
		data, err := os.ReadFile(filepath.Join(root, "deploy/docker", p+".Dockerfile"))
		require.NoError(t, err)
		var instructions []string
		for line := range strings.Lines(string(data)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				instructions = append(instructions, line)
			}
		}
		require.Equal(t, []string{
			"FROM scratch",
			"COPY " + p + " /usr/local/bin/" + p,
			"USER 65532:65532",
			`ENTRYPOINT ["/usr/local/bin/` + p + `"]`,
		}, instructions, p)
	}
}

// TestImages builds the image of spiffe-agent (of every program with
// SPIFFEKIT_LONG=1: a cold build of the others' static binaries takes
// minutes) with the real docker from binaries freshly built by
// scripts/build, and runs -version in each: the binary runs on an empty
// image, as uid 65532, and reports the version the build set. Their
// Dockerfiles differ only by the program's name (TestDockerfiles).
func TestImages(t *testing.T) {
	d := dockertest.Start(t)
	// The classic builder: BuildKit needs the buildx plugin, which
	// Debian's docker.io does not have.
	t.Setenv("DOCKER_BUILDKIT", "0")
	images := []string{"spiffe-agent"}
	if os.Getenv("SPIFFEKIT_LONG") == "1" {
		images = programs
	}
	dist := build(t, []string{"VERSION=v0.0.0-test", "REVISION=0123abcd"}, images...)
	for _, p := range images {
		image := "spiffekit/" + p + ":v0.0.0-test"
		d.Docker(t, "build", "-q", "-f", filepath.Join(root, "deploy/docker", p+".Dockerfile"), "-t", image, dist)
		require.Equal(t, "65532:65532", d.Docker(t, "image", "inspect", "-f", "{{.Config.User}}", image))

		out := d.Docker(t, "run", "--rm", "--network", "none", image, "-version")
		require.Regexp(t, "^"+regexp.QuoteMeta(p+" v0.0.0-test (revision 0123abcd, go")+`[0-9.]+\)$`, out)

	}

	// What runs in a container is uid 65532: a long-lived command of the
	// agent (watch, retrying an address where nothing listens) seen from the
	// host.
	id := d.Docker(t, "run", "-d", "--network", "none", "spiffekit/spiffe-agent:v0.0.0-test",
		"api", "watch", "-socket", "tcp://127.0.0.1:9")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.InitPID(t, id)))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^Uid:\t65532\t65532\t65532\t65532$`, string(status))
	require.Regexp(t, `(?m)^Gid:\t65532\t65532\t65532\t65532$`, string(status))
	require.Regexp(t, `(?m)^CapEff:\t0+$`, string(status), "no capabilities")
}
