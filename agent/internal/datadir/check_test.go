package datadir

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckDataDirOwner: a data directory owned by another uid than the
// agent's, root aside, is refused: its owner could replace the bundle the
// agent trusts.
func TestCheckDataDirOwner(t *testing.T) {
	dir := t.TempDir()
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	owner := ownerOf(fi)
	require.GreaterOrEqual(t, owner, 0)
	if owner == 0 {
		// Root's directories are trusted by every agent; another owner is needed.
		require.NoError(t, os.Chown(dir, 1234, 1234))
		fi, err = os.Stat(dir)
		require.NoError(t, err)
		err = checkDataDir(dir, fi, 0)
		assert.EqualError(t, err, "agent: data directory "+dir+" is owned by uid 1234; it must be owned by the agent's uid 0 or by root")
	} else {
		err = checkDataDir(dir, fi, owner+1)
		assert.EqualError(t, err, "agent: data directory "+dir+" is owned by uid "+strconv.Itoa(owner)+
			"; it must be owned by the agent's uid "+strconv.Itoa(owner+1)+" or by root")
	}

	// Root-owned directories are accepted whoever the agent runs as.
	root, err := os.Stat("/")
	require.NoError(t, err)
	assert.NoError(t, checkDataDir("/", root, 4321))

	// The agent's own directory, not writable by others, is fine.
	own := filepath.Join(t.TempDir(), "own")
	require.NoError(t, os.Mkdir(own, 0o755))
	require.NoError(t, os.Chmod(own, 0o755))
	fi, err = os.Stat(own)
	require.NoError(t, err)
	assert.NoError(t, checkDataDir(own, fi, os.Geteuid()))
}

// TestCheckFileOwner: a file of the data directory that another uid
// owns is refused whatever the agent runs as, root included: the agent
// wrote it, so a file of another owner was put there by someone else.
func TestCheckFileOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bundle.json")
	require.NoError(t, os.WriteFile(path, []byte("{}"), 0o644))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	owner := ownerOf(fi)
	require.GreaterOrEqual(t, owner, 0)
	assert.NoError(t, CheckFile(path, owner, false)(fi))
	err = CheckFile(path, owner+1, false)(fi)
	require.ErrorIs(t, err, ErrUnsafeFile)
	assert.EqualError(t, err, "agent: data directory file "+path+" is owned by uid "+strconv.Itoa(owner)+
		", not by the agent's uid "+strconv.Itoa(owner+1)+": its owner could change it (chown "+strconv.Itoa(owner+1)+" "+path+")")
}
