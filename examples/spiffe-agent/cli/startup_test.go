package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunLocalFailureKeepsToken: an agent that cannot start for a local
// reason (its socket or its data directory belongs to a running agent)
// fails before it attests, so the join token it was given is not spent
// and no agent record is left behind: the token still admits an agent.
func TestRunLocalFailureKeepsToken(t *testing.T) {
	s := startServer(t)
	socket := socketPath(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	first := startRun(t, "-trust-domain", "example.org", "-server", s.Addr, "-trust-bundle", s.bundle,
		"-join-token", s.Token(t), "-socket", socket, "-data-dir", dataDir)
	first.waitFor(t, "the first agent's attestation", func() bool { return s.agents(t) == 1 })
	first.waitFor(t, "the first agent's socket", func() bool { return exists(socket) })

	tok := s.Token(t)
	for _, tc := range []struct {
		name, socket, dataDir, want string
	}{
		{"busy socket", socket, filepath.Join(t.TempDir(), "data"),
			"spiffe-agent run: endpoint: listen: " + socket + " is in use"},
		{"data directory in use", socketPath(t), dataDir,
			"spiffe-agent run: agent: data directory " + dataDir + " is in use by pid " + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, "-trust-domain", "example.org", "-server", s.Addr, "-trust-bundle", s.bundle,
				"-join-token", tok, "-socket", tc.socket, "-data-dir", tc.dataDir)
			select {
			case code := <-r.done:
				r.done <- code
				assert.Equal(t, ExitFailure, code)
				assert.Equal(t, tc.want, lastLine(r.logs.String()))
			case <-time.After(20 * time.Second):
				t.Fatalf("the second agent did not fail; logs:\n%s", r.logs)
			}
			assert.Equal(t, 1, s.agents(t), "no agent record is left behind")
		})
	}

	// The token was not spent: it admits an agent now.
	third := startRun(t, "-trust-domain", "example.org", "-server", s.Addr, "-trust-bundle", s.bundle,
		"-join-token", tok, "-socket", socketPath(t), "-data-dir", filepath.Join(t.TempDir(), "data"))
	third.waitFor(t, "an attestation with the token", func() bool { return s.agents(t) == 2 })
	assert.Equal(t, ExitOK, third.stop(t))
	assert.Equal(t, ExitOK, first.stop(t))
}

// agents returns how many agents the server has attested.
func (s *server) agents(t *testing.T) int {
	t.Helper()
	agents, err := s.Store.ListAgents(t.Context())
	require.NoError(t, err)
	return len(agents)
}
