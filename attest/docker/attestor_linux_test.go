package docker_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/docker"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/cgrouptest"
	"github.com/spiffekit/spiffekit/internal/testing/dockertest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

func sels(values ...string) []attest.Selector {
	out := make([]attest.Selector, len(values))
	for i, v := range values {
		out[i] = attest.Selector{Type: docker.SelectorType, Value: v}
	}
	return attest.NewSelectors(out...).Slice()
}

// recorded describes process pid as a Workload API endpoint records a
// caller at accept: with a pidfd and its start time.
func recorded(t *testing.T, pid int) attest.Workload {
	t.Helper()
	u, err := unix.New(unix.Config{})
	require.NoError(t, err)
	start, err := u.StartTime(pid)
	require.NoError(t, err)
	pidfd, err := unix.OpenPIDFD(pid)
	require.NoError(t, err)
	t.Cleanup(func() { pidfd.Close() })
	return attest.Workload{PID: pid, StartTime: start, PIDFD: pidfd}
}

// startSleeper starts a host process that lives until the test ends.
func startSleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestAttest runs containers on a real dockerd and attests their
// processes, and processes staged to look like theirs.
func TestAttest(t *testing.T) {
	d := dockertest.Start(t)
	defer leaktest.Check(t)()
	const image = "spiffekit-test/sleep:1"
	d.Import(t, image, map[string]string{"/sleep": dockertest.Sleeper(t)}, "/sleep")
	imageID := d.Docker(t, "image", "inspect", "-f", "{{.Id}}", image)
	require.True(t, strings.HasPrefix(imageID, "sha256:"), imageID)

	id := d.Docker(t, "run", "-d", "--network", "none",
		"--label", "app=web", "--label", "tier=front:end", "--label", "bad=line\nbreak",
		"-e", "ROLE=frontend", "-e", "SECRET=hunter2", "-e", "ROLE_X=no", image)
	require.Len(t, id, 64)
	pid := d.InitPID(t, id)

	var logs logtest.Buffer
	a, err := docker.New(docker.Config{SocketPath: d.Socket, AllowedEnv: []string{"ROLE", "MISSING"},
		Logger: logs.Logger()})
	require.NoError(t, err)

	t.Run("a container's process", func(t *testing.T) {
		got, err := a.Attest(t.Context(), recorded(t, pid))
		require.NoError(t, err)
		assert.Equal(t, sels("label:app:web", "label:tier:front:end", "image_id:"+image, "image_id:"+imageID,
			"env:ROLE=frontend"), got.Slice(), "an allowed variable only, and no label with a newline")
		assert.True(t, logs.Contains("left out a selector that would be invalid"), logs.String())
	})

	t.Run("created from the image's ID", func(t *testing.T) {
		other := d.Docker(t, "run", "-d", "--network", "none", imageID)
		got, err := a.Attest(t.Context(), recorded(t, d.InitPID(t, other)))
		require.NoError(t, err)
		assert.Equal(t, sels("image_id:"+imageID), got.Slice())
	})

	t.Run("a host process", func(t *testing.T) {
		got, err := a.Attest(t.Context(), recorded(t, os.Getpid()))
		require.NoError(t, err)
		assert.Zero(t, got.Len(), "no container: no selectors")
	})

	t.Run("a stopped container's process", func(t *testing.T) {
		other := d.Docker(t, "run", "-d", "--network", "none", "--label", "app=web", image)
		w := recorded(t, d.InitPID(t, other))
		d.Docker(t, "stop", "-t", "30", other)
		_, err := a.Attest(t.Context(), w)
		require.ErrorIs(t, err, attest.ErrRejected, "the process is gone")
	})

	t.Run("a process in a cgroup named like an unknown container", func(t *testing.T) {
		// A container of another runtime on the same host: the daemon
		// does not know it, and the process gets no docker selectors.
		sleeper := startSleeper(t)
		unknown := strings.Repeat("ab", 32)
		cgrouptest.Place(t, sleeper, pid, func(p string) string { return strings.Replace(p, id, unknown, 1) })
		got, err := a.Attest(t.Context(), recorded(t, sleeper))
		require.NoError(t, err)
		assert.Zero(t, got.Len())
	})

	t.Run("a process in a cgroup below a container's, named like another container", func(t *testing.T) {
		// What a container that may write its cgroups could do to be
		// taken for the container of its choice.
		victim := d.Docker(t, "run", "-d", "--network", "none", "--label", "app=payments", image)
		d.InitPID(t, victim)
		sleeper := startSleeper(t)
		cgrouptest.Place(t, sleeper, pid, func(p string) string { return p + "/" + nested(p, id, victim) })
		_, err := a.Attest(t.Context(), recorded(t, sleeper))
		require.ErrorIs(t, err, attest.ErrRejected)
		assert.ErrorContains(t, err, "not in")
	})

	t.Run("the daemon is away", func(t *testing.T) {
		away, err := docker.New(docker.Config{SocketPath: d.Dir + "/no.sock", Timeout: 5 * time.Second})
		require.NoError(t, err)
		_, err = away.Attest(t.Context(), recorded(t, pid))
		require.Error(t, err)
		require.NotErrorIs(t, err, attest.ErrRejected, "the caller is told to retry")
		got, err := away.Attest(t.Context(), recorded(t, os.Getpid()))
		require.NoError(t, err, "a host process needs no daemon")
		assert.Zero(t, got.Len())
	})
}

// nested names a cgroup for container other below the cgroup path p of
// container id, in the form of the driver that made p.
func nested(p, id, other string) string {
	if strings.Contains(p, "docker-"+id+".scope") {
		return "docker-" + other + ".scope"
	}
	return other
}
