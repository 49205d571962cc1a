package dockertest

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"
)

func TestDaemon(t *testing.T) {
	d := Start(t)
	assert.Equal(t, "dockerd at "+d.Socket, d.String())

	resp, err := d.HTTPClient().Get("http://docker/version")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "ApiVersion")

	// An image of a static binary runs in a container of its own.
	d.Import(t, "dockertest/sleep:1", map[string]string{"/bin/sleep": Sleeper(t)}, "/bin/sleep")
	id := d.Docker(t, "run", "-d", "--network", "none", "dockertest/sleep:1")
	pid := d.InitPID(t, id)
	cgroup, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	require.NoError(t, err)
	assert.Contains(t, string(cgroup), id, "the process is in the container's cgroups")
	assert.Empty(t, d.Logs(t, id))
	d.Docker(t, "stop", "-t", "30", id)
	assert.Equal(t, "exited", d.Docker(t, "inspect", "-f", "{{.State.Status}}", id), "it stops on SIGTERM")

	_, errOut, code := d.Run(t, nil, "inspect", "no-such-container")
	assert.NotZero(t, code)
	assert.Contains(t, strings.ToLower(errOut), "no such")
}

func TestStaticBinary(t *testing.T) {
	data, err := os.ReadFile(Sleeper(t))
	require.NoError(t, err)
	// A dynamic binary names its loader (PT_INTERP).
	assert.NotContains(t, string(data), "/lib64/ld-linux")
}

func TestUnmountUnder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	outer := filepath.Join(dir, "a")
	inner := filepath.Join(outer, "b")
	require.NoError(t, os.Mkdir(outer, 0o755))
	require.NoError(t, sys.Mount("tmpfs", outer, "tmpfs", 0, "size=1m"))
	require.NoError(t, os.Mkdir(inner, 0o755))
	require.NoError(t, sys.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"))
	unmountUnder(t, dir)
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(data), dir)
}
