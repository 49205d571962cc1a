package unix

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

// later is a clock ahead of the real one by more than settleTime, so that
// a file written just now counts as settled.
func later() time.Time { return time.Now().Add(2 * settleTime) }

// changed returns the change time of path.
func changed(t *testing.T, path string) time.Time {
	t.Helper()
	var st sys.Stat_t
	require.NoError(t, sys.Stat(path, &st))
	return time.Unix(st.Ctim.Unix())
}

// fakeWithExe writes a fake process 77 under a new proc root whose
// executable is a new file holding content, and returns the root and the
// executable's path.
func fakeWithExe(t *testing.T, content string) (string, string) {
	t.Helper()
	root := t.TempDir()
	p := goodFake(t)
	p.exe = filepath.Join(t.TempDir(), "workload")
	require.NoError(t, os.WriteFile(p.exe, []byte(content), 0o755))
	p.write(t, root, 77)
	return root, p.exe
}

func fake77() attest.Workload { return attest.Workload{PID: 77, StartTime: 5555} }

func sha256Of(t *testing.T, sels attest.Selectors) string {
	t.Helper()
	for s := range sels.All() {
		if s.Kind() == "sha256" {
			return s.Value
		}
	}
	return ""
}

func TestHashCache(t *testing.T) {
	t.Run("an unchanged file is hashed once", func(t *testing.T) {
		root, exe := fakeWithExe(t, "#!/bin/true\n")
		a := newAttestor(t, Config{ProcRoot: root, Now: later})
		first, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, first))
		assert.Equal(t, 1, a.hashes.len())

		// The remembered hash is served: the file cannot be read now, yet
		// the attestation is the same.
		require.NoError(t, os.Chmod(exe, 0o000))
		if os.Geteuid() != 0 { // root reads it anyway; the count below says enough
			again, err := a.Attest(t.Context(), fake77())
			require.NoError(t, err)
			assert.True(t, first.Equal(again))
		}
		assert.Equal(t, 1, a.hashes.len())
	})
	t.Run("a file written since is hashed again", func(t *testing.T) {
		// The attack: a file whose hash an entry trusts is rewritten in
		// place, same size, its modification time put back.
		root, exe := fakeWithExe(t, "#!/bin/true\n")
		a := newAttestor(t, Config{ProcRoot: root, Now: later})
		before := changed(t, exe)
		fi, err := os.Stat(exe)
		require.NoError(t, err)
		got, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		trusted := sha256Of(t, got)

		// A change stamped with the same coarse time as the file's last
		// one could not be told apart: wait (bounded) until the clock has
		// moved past it, as it has for any file that settled.
		require.Eventually(t, func() bool {
			require.NoError(t, os.WriteFile(exe, []byte("#!/bin/evil\n"), 0o755))
			require.NoError(t, os.Chtimes(exe, fi.ModTime(), fi.ModTime()))
			return changed(t, exe).After(before)
		}, 10*time.Second, 5*time.Millisecond)
		got, err = a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, got))
		assert.NotEqual(t, trusted, sha256Of(t, got))
	})
	t.Run("another file at the same path is hashed", func(t *testing.T) {
		root, exe := fakeWithExe(t, "#!/bin/true\n")
		a := newAttestor(t, Config{ProcRoot: root, Now: later})
		_, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		next := exe + ".new"
		require.NoError(t, os.WriteFile(next, []byte("#!/bin/evil\n"), 0o755))
		require.NoError(t, os.Rename(next, exe))
		got, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, got))
		assert.Equal(t, 2, a.hashes.len())
	})
	t.Run("a file changed a moment ago is not remembered", func(t *testing.T) {
		root, exe := fakeWithExe(t, "#!/bin/true\n")
		ctime := changed(t, exe)
		a := newAttestor(t, Config{ProcRoot: root, Now: func() time.Time { return ctime.Add(settleTime / 2) }})
		got, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, got))
		assert.Equal(t, 0, a.hashes.len())
	})
	t.Run("no cache", func(t *testing.T) {
		root, _ := fakeWithExe(t, "#!/bin/true\n")
		a := newAttestor(t, Config{ProcRoot: root, Now: later, HashCacheSize: -1})
		_, err := a.Attest(t.Context(), fake77())
		require.NoError(t, err)
		assert.Equal(t, 0, a.hashes.len())
	})
	t.Run("bounded", func(t *testing.T) {
		root, exe := fakeWithExe(t, "0")
		a := newAttestor(t, Config{ProcRoot: root, Now: later, HashCacheSize: 2})
		for _, content := range []string{"1", "2", "3"} {
			next := exe + ".new"
			require.NoError(t, os.WriteFile(next, []byte(content), 0o755))
			require.NoError(t, os.Rename(next, exe))
			got, err := a.Attest(t.Context(), fake77())
			require.NoError(t, err)
			assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, got))
		}
		assert.Equal(t, 2, a.hashes.len())
	})
}

// TestHashOnlyWhenNeeded checks that the executable is hashed only when
// the Workload says a sha256 selector could be needed, and its path read
// only when a path selector could be; when neither could, the executable
// is still identified (and checked against the one recorded), not opened.
func TestHashOnlyWhenNeeded(t *testing.T) {
	root, exe := fakeWithExe(t, "#!/bin/true\n")
	a := newAttestor(t, Config{ProcRoot: root, Now: later})
	var mu sync.Mutex
	var asked []string
	ask := func(path, hash bool) func(string, string) bool {
		return func(typ, kind string) bool {
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, SelectorType, typ)
			asked = append(asked, kind)
			return kind == "path" && path || kind == "sha256" && hash
		}
	}
	w := fake77()
	w.Needed = ask(true, false)
	got, err := a.Attest(t.Context(), w)
	require.NoError(t, err)
	assert.Equal(t, "", sha256Of(t, got))
	assert.True(t, got.Contains(unixSel("path:"+exe)), "the path is needed")
	assert.ElementsMatch(t, []string{"sha256", "path"}, asked)
	assert.Equal(t, 0, a.hashes.len(), "nothing was hashed")

	// An executable that may not be read still has a path when no hash is
	// needed: it is named, not opened for reading.
	require.NoError(t, os.Chmod(exe, 0o100))
	got, err = newAttestor(t, Config{ProcRoot: root}).Attest(t.Context(), w)
	require.NoError(t, err)
	assert.True(t, got.Contains(unixSel("path:"+exe)))

	// Neither needed: no path, no hash, but the executable is still the
	// one recorded at accept.
	w.Needed = ask(false, false)
	got, err = a.Attest(t.Context(), w)
	require.NoError(t, err)
	assert.Equal(t, "", sha256Of(t, got))
	for s := range got.All() {
		assert.NotEqual(t, "path", s.Kind(), "no path was read")
	}
	assert.True(t, got.Contains(unixSel("uid:3999001")), "the other selectors are there")
	var st sys.Stat_t
	require.NoError(t, sys.Stat(exe, &st))
	recorded := fileID(&st)
	w.Executable = &recorded
	_, err = a.Attest(t.Context(), w)
	require.NoError(t, err, "the executable recorded at accept")
	other := recorded
	other.Ino++
	w.Executable = &other
	_, err = a.Attest(t.Context(), w)
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "executes another file than when it connected")
	w = fake77()
	require.NoError(t, os.Chmod(exe, 0o755))

	w.Needed = func(string, string) bool { return true }
	got, err = a.Attest(t.Context(), w)
	require.NoError(t, err)
	assert.Equal(t, "sha256:"+fileSHA256(t, exe), sha256Of(t, got))

	// SkipHash wins, and then nobody is asked about the hash.
	mu.Lock()
	asked = nil
	mu.Unlock()
	w.Needed = ask(true, true)
	got, err = newAttestor(t, Config{ProcRoot: root, SkipHash: true}).Attest(t.Context(), w)
	require.NoError(t, err)
	assert.Equal(t, "", sha256Of(t, got))
	assert.Equal(t, []string{"path"}, asked)
}

// TestHashChangedWhileHashed checks that a file written while it is read
// gives an error, not a hash of two versions.
func TestHashChangedWhileHashed(t *testing.T) {
	_, exe := fakeWithExe(t, "#!/bin/true\n")
	f, err := os.Open(exe)
	require.NoError(t, err)
	defer f.Close()
	var st sys.Stat_t
	require.NoError(t, sys.Fstat(int(f.Fd()), &st))
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/true and more\n"), 0o755))
	a := newAttestor(t, Config{Now: later})
	_, err = a.hashExe(t.Context(), f, &st)
	require.ErrorContains(t, err, "executable changed while it was hashed")
	assert.Equal(t, 0, a.hashes.len())
}

// TestHashCacheConcurrent checks that concurrent attestations of one file
// hash it once, and that those waiting for an attestation that gives up
// hash it themselves.
func TestHashCacheConcurrent(t *testing.T) {
	key := fileKey{dev: 1, ino: 2, size: 3}
	t.Run("one hash for all", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newHashCache(8, later)
			var calls atomic.Int32
			release := make(chan struct{})
			hash := func() (string, error) {
				calls.Add(1)
				<-release
				return "sum", nil
			}
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					sum, err := c.sum(t.Context(), key, hash)
					assert.NoError(t, err)
					assert.Equal(t, "sum", sum)
				})
			}
			synctest.Wait() // one hashes, the others wait for it
			close(release)
			wg.Wait()
			assert.Equal(t, int32(1), calls.Load())
			assert.Equal(t, 1, c.len())
		})
	})
	t.Run("the first gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newHashCache(8, later)
			ctx, cancel := context.WithCancel(t.Context())
			leader := make(chan error, 1)
			go func() {
				_, err := c.sum(ctx, key, func() (string, error) {
					<-ctx.Done()
					return "", ctx.Err()
				})
				leader <- err
			}()
			synctest.Wait()
			follower := make(chan string, 1)
			go func() {
				sum, err := c.sum(t.Context(), key, func() (string, error) { return "mine", nil })
				assert.NoError(t, err)
				follower <- sum
			}()
			synctest.Wait() // the follower waits for the leader
			cancel()
			require.ErrorIs(t, <-leader, context.Canceled)
			assert.Equal(t, "mine", <-follower, "the follower hashed it itself")
		})
	})
	t.Run("a failure is shared, a waiter may give up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newHashCache(8, later)
			boom := errors.New("read failed")
			release := make(chan struct{})
			go func() {
				_, _ = c.sum(t.Context(), key, func() (string, error) { <-release; return "", boom })
			}()
			synctest.Wait()
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := c.sum(ctx, key, nil)
			require.ErrorIs(t, err, context.Canceled)
			errc := make(chan error, 1)
			go func() {
				_, err := c.sum(t.Context(), key, nil)
				errc <- err
			}()
			synctest.Wait()
			close(release)
			require.ErrorIs(t, <-errc, boom)
			assert.Equal(t, 0, c.len(), "failures are not remembered")
		})
	})
}
