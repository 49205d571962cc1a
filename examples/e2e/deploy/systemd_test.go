package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// maxExposure is the highest "systemd-analyze security" exposure level a
// unit may have (0 is the safest, 10 the least; the units score 1.2 and
// 2.2 with systemd 252).
const maxExposure = 2.5

// units are the unit files of deploy/systemd.
var units = []string{"spiffe-server.service", "spiffe-agent.service"}

// unitCopies copies the units into a temporary directory with their
// programs replaced by an executable stub, as systemd-analyze verify wants
// the programs to exist, and returns the directory.
func unitCopies(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub")
	require.NoError(t, os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755))
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join(root, "deploy/systemd", u))
		require.NoError(t, err)
		text := strings.ReplaceAll(string(data), "/usr/local/bin/"+strings.TrimSuffix(u, ".service"), stub)
		require.NotEqual(t, string(data), text, "%s runs /usr/local/bin/%s", u, strings.TrimSuffix(u, ".service"))
		require.NoError(t, os.WriteFile(filepath.Join(dir, u), []byte(text), 0o644))
	}
	return dir
}

// systemdAnalyze runs systemd-analyze with args in dir and returns its
// combined output and exit code.
func systemdAnalyze(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		component.Unavailable(t, "systemd", "no systemd-analyze on $PATH (apt-get install systemd)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("systemd-analyze: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// TestSystemdUnits has systemd-analyze verify the units (any message, an
// unknown key say, fails the test) and rate their sandboxing.
func TestSystemdUnits(t *testing.T) {
	dir := unitCopies(t)
	out, code := systemdAnalyze(t, dir, append([]string{"verify"}, units...)...)
	require.Equal(t, 0, code, out)
	require.Empty(t, out, "systemd-analyze verify has something to say")

	exposure := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, u := range units {
		out, code := systemdAnalyze(t, dir, "security", "--offline=yes", "--no-pager", u)
		require.Equal(t, 0, code, out)
		m := exposure.FindStringSubmatch(out)
		require.NotNil(t, m, out)
		level, err := strconv.ParseFloat(m[1], 64)
		require.NoError(t, err)
		t.Logf("%s: exposure %.1f", u, level)
		assert.LessOrEqual(t, level, maxExposure, "%s is less sandboxed than it was:\n%s", u, out)
	}

	// The check above can fail: a misspelt key is reported.
	bad := filepath.Join(dir, "spiffe-agent.service")
	data, err := os.ReadFile(bad)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(data), "ProtectSystem=", "ProtectSystm=", 1)), 0o644))
	out, _ = systemdAnalyze(t, dir, "verify", "spiffe-agent.service")
	require.Contains(t, out, "Unknown key")
}

// unitKeys reads the [Service] keys of a unit file: each key with its
// values in order.
func unitKeys(t *testing.T, unit string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "deploy/systemd", unit))
	require.NoError(t, err)
	keys := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, "%s: %q", unit, line)
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestSystemdPrivileges holds the privileges the units give: the server
// none; the agent CAP_SYS_PTRACE alone (another user's /proc/<pid>/exe),
// and a socket directory other users can reach.
func TestSystemdPrivileges(t *testing.T) {
	server := unitKeys(t, "spiffe-server.service")
	assert.Equal(t, []string{""}, server["CapabilityBoundingSet"])
	assert.Equal(t, []string{""}, server["AmbientCapabilities"])
	assert.Equal(t, []string{"/usr/local/bin/spiffe-server run -config /etc/spiffe-server/server.json"}, server["ExecStart"])
	assert.Equal(t, []string{"spiffe-server"}, server["RuntimeDirectory"], "the admin socket's directory, /run/spiffe-server")

	agent := unitKeys(t, "spiffe-agent.service")
	assert.Equal(t, []string{"CAP_SYS_PTRACE"}, agent["CapabilityBoundingSet"])
	assert.Equal(t, []string{"CAP_SYS_PTRACE"}, agent["AmbientCapabilities"])
	assert.Equal(t, []string{"/usr/local/bin/spiffe-agent run -config /etc/spiffe-agent/agent.json"}, agent["ExecStart"])
	assert.Equal(t, []string{"spiffe-agent"}, agent["RuntimeDirectory"], "the Workload API socket's directory, /run/spiffe-agent")
	assert.Equal(t, []string{"0755"}, agent["RuntimeDirectoryMode"], "workloads of every user reach the socket")
	for _, k := range []string{"ProtectProc", "ProcSubset", "PrivateUsers", "PrivatePIDs"} {
		assert.NotContains(t, agent, k, "the agent must see the workloads' processes")
	}
	for _, keys := range []map[string][]string{server, agent} {
		assert.Equal(t, []string{"yes"}, keys["NoNewPrivileges"])
		assert.Equal(t, []string{"strict"}, keys["ProtectSystem"])
	}
}
