package adminserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// helperEnv, when set, turns the test binary into a client that dials the
// socket it names, tries one request and prints the outcome as JSON.
const helperEnv = "SPIFFEKIT_ADMIN_TEST_DIAL"

type helperResult struct {
	UID    int    `json:"uid"`
	Denied bool   `json:"denied"`
	Error  string `json:"error"`
}

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		os.Exit(dialHelper(path))
	}
	os.Exit(m.Run())
}

func dialHelper(path string) int {
	c := admin.Dial(path)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := helperResult{UID: os.Getuid()}
	if _, err := c.ListEntries(ctx, registry.Filter{}); err != nil {
		res.Error = err.Error()
		res.Denied = errors.Is(err, admin.ErrPermissionDenied)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// runAsNobody runs the test binary as uid 65534 against the socket at path.
func runAsNobody(t *testing.T, path string) helperResult {
	t.Helper()
	// The binary sits in a private build directory: copy it where nobody
	// can run it.
	dir := publicDir(t)
	bin := calltest.Binary(t, dir)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = []string{helperEnv + "=" + path, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	require.NoError(t, err, "helper output: %s", out)
	var res helperResult
	require.NoError(t, json.Unmarshal(out, &res), "helper output: %s", out)
	require.Equal(t, 65534, res.UID)
	return res
}

// publicDir returns a fresh directory that every user can traverse.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spiffekit-admin-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("running a client as another uid (65534) needs root; run the tests as root to cover the uid check")
	}
}

// The security rule of the admin API: only root and the server's own uid
// may administer it. Another local user is refused by the socket's mode,
// and, should the mode be loosened, by the uid check.
func TestOtherUIDIsRefused(t *testing.T) {
	requireRoot(t)
	dir := publicDir(t)
	e := admintest.StartAt(t, filepath.Join(dir, "admin.sock"))

	t.Run("socket mode 0600 keeps it from connecting", func(t *testing.T) {
		fi, err := os.Stat(e.Path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		res := runAsNobody(t, e.Path)
		assert.True(t, res.Denied, res.Error)
		assert.Contains(t, res.Error, "permission denied")
	})

	t.Run("with the socket open to all, the uid check refuses", func(t *testing.T) {
		require.NoError(t, os.Chmod(e.Path, 0o666))
		res := runAsNobody(t, e.Path)
		assert.True(t, res.Denied, res.Error)
		assert.Equal(t, "admin: permission denied: uid 65534 may not administer this server", res.Error)
		assert.Contains(t, e.Log.String(), "level=WARN")
		assert.Contains(t, e.Log.String(), "uid=65534")
		assert.Contains(t, e.Log.String(), "pid=")
		entries, err := e.Client.ListEntries(t.Context(), registry.Filter{})
		require.NoError(t, err, "root still may")
		assert.Empty(t, entries)
	})
}

func TestAllowedUIDs(t *testing.T) {
	other := os.Getuid() + 4242
	e := admintest.Start(t, func(c *adminserver.Config) { c.AllowedUIDs = []int{other} })
	ctx := t.Context()
	c := e.Client
	id := spiffeid.RequireFromPath(td, "/agent/x")

	_, created := e.Store.Create(ctx, admintest.Entry("/web", "unix:uid:1"))
	require.NoError(t, created)
	calls := map[string]func() error{
		"create": func() error { _, err := c.CreateEntry(ctx, admintest.Entry("/x", "a:b")); return err },
		"list":   func() error { _, err := c.ListEntries(ctx, registry.Filter{}); return err },
		"get":    func() error { _, err := c.Entry(ctx, "x"); return err },
		"delete": func() error { _, err := c.DeleteEntry(ctx, "x", 0); return err },
		"token":  func() error { _, err := c.GenerateToken(ctx, time.Minute, spiffeid.ID{}); return err },
		"bundle": func() error { _, err := c.Bundle(ctx, admin.FormatPEM); return err },
		"set bundle": func() error {
			_, err := c.SetFederatedBundle(ctx, spiffeid.RequireTrustDomainFromString("o.org"), nil)
			return err
		},
		"list bundles": func() error { _, err := c.ListFederatedBundles(ctx); return err },
		"delete bundle": func() error {
			_, err := c.DeleteFederatedBundle(ctx, spiffeid.RequireTrustDomainFromString("o.org"), "")
			return err
		},
		"agents":        func() error { _, err := c.ListAgents(ctx); return err },
		"evict":         func() error { return c.EvictAgent(ctx, id) },
		"ban":           func() error { _, err := c.BanAgent(ctx, id); return err },
		"unknown route": func() error { _, err := c.Entry(ctx, "a/b/c"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, admin.ErrPermissionDenied)
			assert.Contains(t, err.Error(), "may not administer this server")
		})
	}
	entries, _, err := e.Store.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing was written")
	assert.Contains(t, e.Log.String(), "level=WARN")
}

// A listener that is not a unix socket gives no credentials: every caller
// is refused (fail closed), even on loopback.
func TestTCPIsRefused(t *testing.T) {
	srv, err := adminserver.New(minimalConfig())
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	admintest.Serve(t, srv, lis)
	conn, err := net.Dial("tcp", lis.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /v1/agents HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := io.ReadAll(conn)
	require.NoError(t, err)
	assert.Contains(t, string(resp), "403 Forbidden")
	assert.Contains(t, string(resp), "credentials could not be read")
}

func minimalConfig() adminserver.Config {
	s := memstore.New(memstore.Config{})
	return adminserver.Config{
		TrustDomain: td,
		Entries:     s,
		Agents:      s,
		Bundles:     s,
		Tokens:      &admintest.Tokens{},
		Bundle:      func() *spiffebundle.Bundle { return nil },
	}
}

func TestNewRequiresEveryPart(t *testing.T) {
	tests := map[string]func(*adminserver.Config){
		"trust domain":  func(c *adminserver.Config) { c.TrustDomain = spiffeid.TrustDomain{} },
		"entry store":   func(c *adminserver.Config) { c.Entries = nil },
		"agent store":   func(c *adminserver.Config) { c.Agents = nil },
		"bundle store":  func(c *adminserver.Config) { c.Bundles = nil },
		"token issuer":  func(c *adminserver.Config) { c.Tokens = nil },
		"bundle source": func(c *adminserver.Config) { c.Bundle = nil },
	}
	for name, modify := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := minimalConfig()
			modify(&cfg)
			_, err := adminserver.New(cfg)
			require.ErrorContains(t, err, "admin: "+name+" is required")
		})
	}
	_, err := adminserver.New(minimalConfig())
	require.NoError(t, err)
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()

	t.Run("mode 0600", func(t *testing.T) {
		path := filepath.Join(dir, "a.sock")
		lis, err := adminserver.ListenUnix(path)
		require.NoError(t, err)
		defer lis.Close()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		assert.Equal(t, os.ModeSocket, fi.Mode().Type())
	})

	t.Run("a live socket is not taken over", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		lis, err := adminserver.ListenUnix(path)
		require.NoError(t, err)
		defer lis.Close()
		_, err = adminserver.ListenUnix(path)
		require.ErrorContains(t, err, "is in use")
	})

	t.Run("a stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		l.SetUnlinkOnClose(false)
		require.NoError(t, l.Close())
		_, err = os.Stat(path)
		require.NoError(t, err, "the stale socket file is there")
		lis, err := adminserver.ListenUnix(path)
		require.NoError(t, err)
		require.NoError(t, lis.Close())
	})

	t.Run("another kind of file is never removed", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o600))
		_, err := adminserver.ListenUnix(path)
		require.ErrorContains(t, err, "is not a socket")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "keep me", string(data))

		link := filepath.Join(dir, "link")
		require.NoError(t, os.Symlink(path, link))
		_, err = adminserver.ListenUnix(link)
		require.ErrorContains(t, err, "is not a socket")
	})

	t.Run("no such directory", func(t *testing.T) {
		_, err := adminserver.ListenUnix(filepath.Join(dir, "missing", "a.sock"))
		require.ErrorContains(t, err, "admin: listen")
	})
}

func TestServeStopsAndFails(t *testing.T) {
	srv, err := adminserver.New(minimalConfig())
	require.NoError(t, err)

	// Serve returns the listener's failure.
	lis, err := adminserver.ListenUnix(filepath.Join(t.TempDir(), "s.sock"))
	require.NoError(t, err)
	require.NoError(t, lis.Close())
	err = srv.Serve(t.Context(), lis)
	require.ErrorContains(t, err, "admin: serve")

	// Cancelling stops Serve, closes the listener and removes the socket.
	path := filepath.Join(t.TempDir(), "t.sock")
	lis, err = adminserver.ListenUnix(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	c := admin.Dial(path)
	defer c.Close()
	_, err = c.ListAgents(t.Context())
	require.NoError(t, err)
	cancel()
	require.NoError(t, <-done)
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)

	_, err = c.ListAgents(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "admin: cannot reach the server at "+path)
	assert.NotErrorIs(t, err, admin.ErrPermissionDenied)
}
