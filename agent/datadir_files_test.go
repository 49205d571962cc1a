package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

// Property: each file of the data directory that the agent reads must be
// its own and out of others' reach: the bundle is its trust anchor, the
// SVID and key its identity. A file that another uid owns, that group or
// others may write to, or (the key) that group or others may read, is
// refused with an error naming the file and what is wrong, before the
// agent attests or serves anything; once the file is put right, the agent
// reuses its saved SVID.
func TestDataDirFilesOthersCouldChangeAreRefused(t *testing.T) {
	s := startServer(t)
	uid := os.Geteuid()
	type breakage struct {
		name  string
		apply func(t *testing.T, path string) // undone by restore
		want  func(path string) string
	}
	chmod := func(mode os.FileMode) func(*testing.T, string) {
		return func(t *testing.T, path string) { require.NoError(t, os.Chmod(path, mode)) }
	}
	writable := func(mode os.FileMode) breakage {
		return breakage{fmt.Sprintf("mode %04o", mode), chmod(mode), func(path string) string {
			return fmt.Sprintf("agent: data directory file %s has mode %04o: group and others must not be able to write to it (chmod go-w %s)",
				path, mode, path)
		}}
	}
	ownedByAnother := breakage{"owned by another uid", func(t *testing.T, path string) {
		// Only root can give a file away; as another user, the file is
		// made by root beforehand (see below).
		require.NoError(t, os.Chown(path, 1234, 1234))
	}, func(path string) string {
		return fmt.Sprintf("agent: data directory file %s is owned by uid 1234, not by the agent's uid %d: its owner could change it (chown %d %s)",
			path, uid, uid, path)
	}}
	keyOpen := func(mode os.FileMode) breakage {
		return breakage{fmt.Sprintf("mode %04o", mode), chmod(mode), func(path string) string {
			return fmt.Sprintf("agent: data directory file %s has mode %04o: it holds the agent's private key, which only the agent may read (chmod 0600 %s)",
				path, mode, path)
		}}
	}
	for _, file := range []struct {
		name      string
		mode      os.FileMode // as the agent writes it
		breakages []breakage
	}{
		{"agent-svid.pem", 0o644, []breakage{writable(0o664), writable(0o646), ownedByAnother}},
		{"agent-key.pem", 0o600, []breakage{keyOpen(0o640), keyOpen(0o604), keyOpen(0o660), ownedByAnother}},
		{"bundle.json", 0o644, []breakage{writable(0o664), writable(0o646), writable(0o666), ownedByAnother}},
	} {
		for _, b := range file.breakages {
			t.Run(file.name+"/"+b.name, func(t *testing.T) {
				if b.name == ownedByAnother.name && uid != 0 {
					t.Skip("giving a file to another uid needs root; TestCheckStateFileOwner covers the check")
				}
				dir := filepath.Join(t.TempDir(), "data")
				cfg := s.AgentConfig(t)
				cfg.DataDir = dir
				first, err := nodetest.TryAgent(t, cfg)
				require.NoError(t, err)
				id, serial := first.ID(), first.SVID().Certificates[0].SerialNumber
				require.NoError(t, first.Stop())

				path := filepath.Join(dir, file.name)
				info, err := os.Stat(path)
				require.NoError(t, err)
				require.Equal(t, file.mode, info.Mode().Perm(), "as the agent writes it")
				b.apply(t, path)
				_, err = nodetest.TryAgent(t, cfg)
				require.EqualError(t, err, b.want(path))

				// Put right, the file is read again, and the saved SVID
				// reused: the refusal spent nothing (the join token is
				// spent already, and no new one is needed).
				require.NoError(t, os.Chown(path, uid, -1))
				require.NoError(t, os.Chmod(path, file.mode))
				again, err := nodetest.TryAgent(t, cfg)
				require.NoError(t, err)
				assert.Equal(t, id, again.ID())
				assert.Equal(t, serial, again.SVID().Certificates[0].SerialNumber)
				require.NoError(t, again.Stop())
			})
		}
	}
}
