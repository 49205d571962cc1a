package unix

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestLongestPathFits checks that every path fdPath accepts makes a
// selector value within attest.MaxValueLength.
func TestLongestPathFits(t *testing.T) {
	assert.LessOrEqual(t, len("path:")+maxPathSize, attest.MaxValueLength)
}

// TestAttestLeavesOutInvalidPath checks that an executable path that is not
// UTF-8 text without control characters gives no path selector, with a
// warning, and that the other selectors remain.
func TestAttestLeavesOutInvalidPath(t *testing.T) {
	for _, name := range []string{"work\nload", "work\xffload", "work\x7fload", "work\tload"} {
		t.Run(strings.ToValidUTF8(name, "?"), func(t *testing.T) {
			root := t.TempDir()
			p := goodFake(t)
			p.exe = filepath.Join(t.TempDir(), name)
			require.NoError(t, os.WriteFile(p.exe, []byte("#!/bin/true\n"), 0o755))
			p.write(t, root, 77)
			var log bytes.Buffer
			a := newAttestor(t, Config{ProcRoot: root, Logger: slog.New(slog.NewTextHandler(&log, nil))})

			got, err := a.Attest(t.Context(), attest.Workload{PID: 77, StartTime: 5555})
			require.NoError(t, err)
			assert.Equal(t, []attest.Selector{
				unixSel("gid:3999002"),
				unixSel("sha256:" + fileSHA256(t, p.exe)),
				unixSel("supplementary_gid:3999003"),
				unixSel("supplementary_gid:3999004"),
				unixSel("uid:3999001"),
			}, got.Slice())
			assert.Contains(t, log.String(), "level=WARN")
			assert.Contains(t, log.String(), "unix: left out a selector that would be invalid")
			assert.Contains(t, log.String(), "pid=77 kind=path")
			assert.Equal(t, 1, strings.Count(log.String(), "\n"), "one warning: %s", log.String())
		})
	}
}

// TestSelectorsLeaveOutInvalidNames checks that user and group names that
// would make invalid selectors are left out, and that the attestor works
// without a logger.
func TestSelectorsLeaveOutInvalidNames(t *testing.T) {
	a := newAttestor(t, Config{NameCacheTTL: time.Hour})
	far := time.Now().Add(time.Hour)
	a.names.users[10] = cachedName{name: "bad\nuser", expires: far}
	a.names.groups[20] = cachedName{name: "good", expires: far}
	a.names.groups[30] = cachedName{name: "bad\x00group", expires: far}
	got, err := a.selectors(1, facts{status: procStatus{uid: 10, gid: 20, groups: []uint32{30}}})
	require.NoError(t, err)
	assert.Equal(t, []attest.Selector{
		unixSel("gid:20"),
		unixSel("group:good"),
		unixSel("supplementary_gid:30"),
		unixSel("uid:10"),
	}, got.Slice())
}

// TestAttestLongestPathRegisters checks that the path selector of an
// executable at the longest path a symlink can hold (PATH_MAX less the NUL)
// is produced, and can be registered in the stores and comes back unchanged.
func TestAttestLongestPathRegisters(t *testing.T) {
	root := t.TempDir()
	p := goodFake(t)
	// The executable must exist: its path is read from the open file.
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	p.exe = dir + registrytest.UnixPath(registrytest.PathMax-1-len(dir))
	require.Len(t, p.exe, registrytest.PathMax-1)
	require.NoError(t, os.MkdirAll(filepath.Dir(p.exe), 0o755))
	require.NoError(t, os.WriteFile(p.exe, []byte("#!/bin/true\n"), 0o755))
	p.write(t, root, 77)
	got, err := newAttestor(t, Config{ProcRoot: root, SkipHash: true}).Attest(t.Context(), attest.Workload{PID: 77, StartTime: 5555})
	require.NoError(t, err)
	require.True(t, got.Contains(unixSel("path:"+p.exe)), "the path selector is there")

	sqlite, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(t.TempDir(), "r.db")})
	require.NoError(t, err)
	defer sqlite.Close()
	for name, s := range map[string]registry.Store{"memstore": memstore.New(memstore.Config{}), "sqlite": sqlite} {
		created, err := s.Create(t.Context(), registry.Entry{
			SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/long"),
			ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
			Selectors: got.Slice(),
		})
		require.NoError(t, err, name)
		assert.Equal(t, got.Slice(), created.Selectors, name)
		again, err := s.Get(t.Context(), created.ID)
		require.NoError(t, err, name)
		assert.Equal(t, created, again, name)
	}
}
