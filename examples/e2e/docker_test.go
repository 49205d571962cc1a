package e2e_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/dockertest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// TestDockerWorkload: an agent with the docker workload attestor gives a
// process in a container the SVID registered for the container's label,
// and nothing to a process on the host or in a container labelled
// otherwise. The daemon is a real dockerd; the containers run the agent's
// own binary, built static, as the workload.
func TestDockerWorkload(t *testing.T) {
	d := dockertest.Start(t)
	const image = "spiffekit-e2e/agent:1"
	d.Import(t, image, map[string]string{"/spiffe-agent": dockertest.StaticBinary(t, "./examples/spiffe-agent")}, "/spiffe-agent")

	e := progtest.NewEnv(t)
	e.StartServer()
	cfg := filepath.Join(e.Dir, "agent.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"workload_attestors": {
		"unix": {},
		"docker": {"docker_socket_path": "unix://`+d.Socket+`", "allowed_env_vars": ["ROLE"]}
	}}`), 0o644))
	agent := progtest.Start(t, e.AgentBin, append(e.AgentArgs(e.Token()), "-config", cfg)...)
	agentID := e.AgentID()
	e.Entry(agentID, "spiffe://example.org/web", "docker:label:app:web")
	e.Entry(agentID, "spiffe://example.org/web-frontend", "docker:env:ROLE=frontend", "-selector", "docker:image_id:"+image)

	// The agent's socket directory, mounted into the containers.
	fetch := func(args ...string) (string, int) {
		run := append([]string{"run", "--rm", "--network", "none", "-v", e.Dir + ":/run/agent"}, args...)
		run = append(run, image, "api", "fetch", "x509", "-socket", "/run/agent/"+filepath.Base(e.APISock))
		out, errOut, code := d.Run(t, nil, run...)
		progtest.Note(t, "docker "+strings.Join(run, " ")+"\nstdout: "+out+"\nstderr: "+errOut)
		return out + errOut, code
	}
	var out string
	progtest.WaitFor(t, "the SVID of the container labelled app=web", func() bool {
		var code int
		out, code = fetch("--label", "app=web")
		return code == 0
	}, agent)
	assert.Contains(t, out, "spiffe://example.org/web\n")
	assert.NotContains(t, out, "web-frontend")

	out, code := fetch("--label", "app=web", "-e", "ROLE=frontend")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "spiffe://example.org/web\n")
	assert.Contains(t, out, "spiffe://example.org/web-frontend\n", "both entries match")

	out, code = fetch("--label", "app=db", "-e", "ROLE=backend")
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, out, "no identity for this process")

	out, errOut, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", e.APISock)
	assert.NotEqual(t, 0, code, out)
	assert.Contains(t, errOut, "no identity for this process", "a host process gets nothing")
}
