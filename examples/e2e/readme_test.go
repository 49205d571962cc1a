package e2e

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// nobody is the uid (and gid) of the non-root run of the walk-through.
const nobody = 65534

// readmeScript returns the shell block of README.md's "A server and an
// agent", made to run in dir: its files under dir instead of /tmp, the
// node API on port, the programs already built in dir (its go build lines
// left out).
func readmeScript(t *testing.T, dir, port string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "## A server and an agent\n")
	require.True(t, ok, "README.md has no walk-through")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```\n")
	require.True(t, ok)
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if !strings.HasPrefix(l, "go build ") {
			lines = append(lines, l)
		}
	}
	script := strings.Join(lines, "\n")
	require.Contains(t, script, "127.0.0.1:8081")
	script = strings.ReplaceAll(script, "127.0.0.1:8081", port)
	return strings.ReplaceAll(script, "/tmp/", dir+"/")
}

// copyProgram copies the program at src into dir, executable by all.
func copyProgram(t *testing.T, src, dir string) {
	t.Helper()
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dir, filepath.Base(src)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

var agentStarted = regexp.MustCompile(`msg="agent started" agent=(\S+)`)

// walkThrough runs the README's walk-through twice in a row in dir, as
// cred (nil: this process's user), and checks what each run prints and
// logs, and that the second reuses what the first left.
func walkThrough(t *testing.T, dir string, cred *syscall.Credential) {
	serverBin, agentBin := progtest.Build(t)
	copyProgram(t, serverBin, dir)
	copyProgram(t, agentBin, dir)
	if cred != nil {
		require.NoError(t, filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(path, int(cred.Uid), int(cred.Gid))
		}))
	}
	script := readmeScript(t, dir, progtest.FreePort(t))
	var agentID string
	for run := 1; run <= 2; run++ {
		stdout, stderr, code := progtest.Run(t, cred, "sh", "-e", "-c", script)
		require.Equal(t, 0, code, "run %d: stdout: %s\nstderr: %s", run, stdout, stderr)
		assert.Empty(t, stderr, "run %d", run)
		// The first run registers the entry, which entry create prints;
		// the second finds it.
		svid := stdout
		if run == 1 {
			var ok bool
			_, svid, ok = strings.Cut(stdout, "Selector:       unix:uid:")
			assert.True(t, ok && strings.HasPrefix(stdout, "Entry ID:       "), stdout)
			_, svid, _ = strings.Cut(svid, "\n")
		}
		assert.True(t, strings.HasPrefix(svid, "SVID 0\n  SPIFFE ID:  spiffe://example.org/me\n"), "run %d: %s", run, stdout)
		assert.Contains(t, stdout, "  Bundle:     example.org, 1 X.509 authority(ies)\n")

		agentLog, err := os.ReadFile(filepath.Join(dir, "agent.log"))
		require.NoError(t, err)
		serverLog, err := os.ReadFile(filepath.Join(dir, "srv.log"))
		require.NoError(t, err)
		assert.Contains(t, string(agentLog), `msg="shutting down" cause="terminated signal received"`, "run %d", run)
		assert.Contains(t, string(agentLog), "msg=stopped", "run %d", run)
		assert.Contains(t, string(serverLog), `msg="server stopped"`, "run %d", run)
		assert.NotContains(t, string(agentLog), "level=ERROR")
		m := agentStarted.FindStringSubmatch(string(agentLog))
		require.NotNil(t, m, "run %d: %s", run, agentLog)
		if run == 1 {
			agentID = m[1]
			continue
		}
		assert.Equal(t, agentID, m[1], "the second run's agent is the first's")
		assert.Contains(t, string(agentLog), "reusing the saved agent SVID")
	}
	for path, mode := range map[string]os.FileMode{"agent": 0o755, "agent/data": 0o700, "srv": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, path))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), path)
		if cred != nil {
			assert.Equal(t, cred.Uid, fi.Sys().(*syscall.Stat_t).Uid, path)
		}
	}
}

// TestREADMEWalkThrough runs README.md's server and agent walk-through as
// written, twice in a row, as this process's user.
func TestREADMEWalkThrough(t *testing.T) {
	walkThrough(t, progtest.ShortTemp(t), nil)
}

// TestREADMEWalkThroughAsAnotherUser runs it, twice, as an unprivileged
// user (nobody): server, agent and workload, in a directory of that
// user's.
func TestREADMEWalkThroughAsAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		component.Unavailable(t, "uids", "runs the walk-through as another user, which needs root")
	}
	walkThrough(t, progtest.ShortTemp(t), &syscall.Credential{Uid: nobody, Gid: nobody})
}
