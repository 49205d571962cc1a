package cgrouptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlace(t *testing.T) {
	cmd := exec.Command("sleep", "300")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	before := Lines(t, pid)
	require.NotEmpty(t, before)

	t.Run("placed", func(t *testing.T) {
		Place(t, pid, os.Getpid(), func(p string) string { return filepath.Join(p, "cgrouptest-a", "b") })
		for i, l := range Lines(t, pid) {
			assert.True(t, strings.HasSuffix(l.Path, "/cgrouptest-a/b"), "hierarchy %s:%s: %s", l.Hierarchy, l.Controllers, l.Path)
			assert.Equal(t, before[i].Hierarchy, l.Hierarchy)
		}
	})
	// Back where it was, and the cgroups made for it are gone.
	assert.Equal(t, before, Lines(t, pid))
	ms := mounts(t)
	for _, l := range Lines(t, os.Getpid()) {
		_, err := os.Stat(dir(t, ms, l, filepath.Join(l.Path, "cgrouptest-a")))
		assert.ErrorIs(t, err, os.ErrNotExist)
	}
}
