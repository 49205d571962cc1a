package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

// Open creates the data directory private (its parents, which it may
// share with the Workload API socket, open to all), refuses one others
// may write to, and locks it for one agent at a time.
func TestOpen(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "agent")
	dir := filepath.Join(parent, "data")
	lock, err := Open(dir)
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	fi, err = os.Stat(parent)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	assert.FileExists(t, filepath.Join(dir, dirlock.FileName))

	_, err = Open(dir)
	assert.ErrorContains(t, err, "agent: data directory "+dir+" is in use by pid")
	require.NoError(t, lock.Close())
	lock, err = Open(dir)
	require.NoError(t, err, "free again once closed")
	require.NoError(t, lock.Close())

	open := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o770))
	_, err = Open(open)
	assert.EqualError(t, err, "agent: data directory "+open+" has mode 0770: group and others must not be able to write to it, "+
		"since it holds the agent's trust bundle (chmod go-w "+open+")")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Open(filepath.Join(file, "data"))
	assert.ErrorContains(t, err, "agent: creating the data directory")
}

// What SaveState and SaveBundle write, LoadState reads back; without a
// directory, nothing is kept.
func TestSaveAndLoad(t *testing.T) {
	td, id, m := newCA(t)
	key, svid := agentSVID(t, m, id)

	require.NoError(t, SaveState("", softwareFiles, nil, svid), "no directory, nothing kept")
	require.NoError(t, SaveBundle("", svid.Bundle))
	_, _, err := load("", td)
	require.ErrorIs(t, err, ErrNoState)
	_, _, err = load(t.TempDir(), td)
	require.ErrorIs(t, err, ErrNoState)

	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, save(t, dir, key, svid), "the directory is made")
	for name, perm := range map[string]os.FileMode{KeyFile: 0o600, SVIDFile: 0o644, BundleFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, perm, fi.Mode().Perm(), name)
	}
	got, gotSVID, err := load(dir, td)
	require.NoError(t, err)
	assert.Equal(t, key.Public(), got.Public())
	assert.Equal(t, id, gotSVID.ID)
	assert.True(t, svid.Bundle.Equal(gotSVID.Bundle))

	// A new bundle, with the CA that signed the SVID and another.
	other := testca.New(t, td)
	b := svid.Bundle.Clone()
	b.AddX509Authority(other.Root())
	require.NoError(t, SaveBundle(dir, b))
	_, gotSVID, err = load(dir, td)
	require.NoError(t, err)
	assert.True(t, b.Equal(gotSVID.Bundle))
}

// LoadState refuses what does not hold together, and a file someone else
// could have written with an error that is ErrUnsafeFile.
func TestLoadStateRefuses(t *testing.T) {
	td, id, m := newCA(t)
	key, svid := agentSVID(t, m, id)
	otherBundle, err := spiffebundle.FromX509Bundle(testca.New(t, td).X509Bundle()).Marshal()
	require.NoError(t, err)
	otherKey, err := pemutil.EncodePKCS8PrivateKey(testca.NewECKey(t))
	require.NoError(t, err)

	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		unsafe bool
		want   string
	}{
		{"the key missing", func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, KeyFile))) },
			false, "agent: reading the saved key"},
		{"the bundle missing", func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, BundleFile))) },
			false, "agent: reading the saved bundle"},
		{"the SVID not PEM", func(t *testing.T, dir string) { write(t, dir, SVIDFile, []byte("junk"), 0o644) },
			false, "agent: the saved SVID"},
		{"the key not a key", func(t *testing.T, dir string) { write(t, dir, KeyFile, []byte("junk"), 0o600) },
			false, "agent: the saved key ("},
		{"the bundle not a bundle", func(t *testing.T, dir string) { write(t, dir, BundleFile, []byte("{"), 0o644) },
			false, "agent: the saved bundle"},
		{"another bundle", func(t *testing.T, dir string) { write(t, dir, BundleFile, otherBundle, 0o644) },
			false, "agent: the saved SVID"},
		{"another key", func(t *testing.T, dir string) { write(t, dir, KeyFile, otherKey, 0o600) },
			false, "agent: the saved key does not match the saved SVID"},
		{"the SVID open to writes", func(t *testing.T, dir string) { chmod(t, dir, SVIDFile, 0o666) },
			true, "has mode 0666: group and others must not be able to write to it"},
		{"the key open to reads", func(t *testing.T, dir string) { chmod(t, dir, KeyFile, 0o640) },
			true, "has mode 0640: it holds the agent's private key, which only the agent may read"},
		{"the bundle open to writes", func(t *testing.T, dir string) { chmod(t, dir, BundleFile, 0o664) },
			true, "has mode 0664"},
		{"another key beside, open to reads", func(t *testing.T, dir string) {
			write(t, dir, KeyFile, otherKey, 0o600)
			write(t, dir, softwareFiles.Next, otherKey, 0o600)
			chmod(t, dir, softwareFiles.Next, 0o644)
		}, true, "agent-key.next.pem has mode 0644"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, save(t, dir, key, svid))
			tt.change(t, dir)
			_, _, err := load(dir, td)
			require.ErrorContains(t, err, tt.want)
			assert.Equal(t, tt.unsafe, errors.Is(err, ErrUnsafeFile))
			assert.NotErrorIs(t, err, ErrNoState)
		})
	}
}

func write(t *testing.T, dir, name string, data []byte, perm os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, perm))
}

func chmod(t *testing.T, dir, name string, perm os.FileMode) {
	t.Helper()
	require.NoError(t, os.Chmod(filepath.Join(dir, name), perm))
}
