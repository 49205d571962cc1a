// Package admintest serves the administration API (admin/adminserver) for
// the tests of its server and of its client (admin): on a unix socket of
// the test's own, over a memstore, with a join token issuer and the
// managers a server may be given (authorities, federation relationships,
// SVIDs minted over a real CA) as stand-ins whose answers and failures a
// test controls. Whatever it starts stops with the test.
package admintest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TrustDomain is the trust domain of the servers Start serves.
var TrustDomain = spiffeid.RequireTrustDomainFromString("example.org")

// Tokens is a join token issuer that makes random tokens and remembers the
// last request.
type Tokens struct {
	mu    sync.Mutex
	ttl   time.Duration
	alias spiffeid.ID
	err   error
}

// GenerateToken implements adminserver.TokenIssuer: it fails with the
// error of SetErr, if any, else answers a random token expiring at
// 2030-01-02T03:04:05Z.
func (ti *Tokens) GenerateToken(_ context.Context, ttl time.Duration, alias spiffeid.ID) (string, time.Time, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ti.err != nil {
		return "", time.Time{}, ti.err
	}
	ti.ttl, ti.alias = ttl, alias
	return "tok-" + rand.Text(), time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), nil
}

// SetErr makes every GenerateToken from now on fail with err (nil: none).
func (ti *Tokens) SetErr(err error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.err = err
}

// Last returns the TTL and the node alias of the last token made.
func (ti *Tokens) Last() (time.Duration, spiffeid.ID) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.ttl, ti.alias
}

// Env is a served admin API and its client.
type Env struct {
	// Client is a client of the API, closed when the test ends.
	Client *admin.Client
	// Path is the API's socket.
	Path string
	// Store keeps the entries, agents and federated bundles.
	Store *memstore.Store
	// Tokens issues the join tokens.
	Tokens *Tokens
	// CA is the trust domain's CA; the API's own bundle holds its root.
	CA *testca.CA
	// Log holds what the server logged, from Debug up.
	Log *logtest.Buffer
}

// Start serves the admin API on a fresh socket until the test ends, with
// the configuration Start makes changed by modify, in order.
func Start(t testing.TB, modify ...func(*adminserver.Config)) *Env {
	t.Helper()
	return StartAt(t, filepath.Join(t.TempDir(), "admin.sock"), modify...)
}

// StartAt is Start with the socket at path.
func StartAt(t testing.TB, path string, modify ...func(*adminserver.Config)) *Env {
	t.Helper()
	e := &Env{
		Path:   path,
		Store:  memstore.New(memstore.Config{}),
		Tokens: &Tokens{},
		CA:     testca.New(t, TrustDomain),
		Log:    &logtest.Buffer{},
	}
	own := spiffebundle.FromX509Bundle(e.CA.X509Bundle())
	cfg := adminserver.Config{
		TrustDomain: TrustDomain,
		Entries:     e.Store,
		Agents:      e.Store,
		Bundles:     e.Store,
		Tokens:      e.Tokens,
		Bundle:      func() *spiffebundle.Bundle { return own },
		Logger:      slog.New(slog.NewTextHandler(e.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range modify {
		m(&cfg)
	}
	srv, err := adminserver.New(cfg)
	require.NoError(t, err)
	lis, err := adminserver.ListenUnix(e.Path)
	require.NoError(t, err)
	Serve(t, srv, lis)
	e.Client = admin.Dial(e.Path)
	t.Cleanup(func() { e.Client.Close() })
	return e
}

// Serve runs srv on lis until the test ends, and checks that Serve
// returns nil once stopped.
func Serve(t testing.TB, srv *adminserver.Server, lis net.Listener) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
}

// Raw sends a hand-made request on the socket at path, for inputs the
// client never produces, and returns the status and body.
func Raw(t testing.TB, path, method, target string, body io.Reader) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://admin"+target, body)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// Entry returns an entry of TrustDomain at path, parented by
// /agent/node1, with the selectors ("type:value"), which must parse.
func Entry(path string, selectors ...string) registry.Entry {
	e := registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(TrustDomain, path),
		ParentID: spiffeid.RequireFromPath(TrustDomain, "/agent/node1"),
	}
	for _, s := range selectors {
		sel, err := attest.ParseSelector(s)
		if err != nil {
			panic(err)
		}
		e.Selectors = append(e.Selectors, sel)
	}
	return e
}

// ForeignDoc returns the SPIFFE bundle document of a fresh CA of the
// trust domain name.
func ForeignDoc(t testing.TB, name string) []byte {
	t.Helper()
	ftd := spiffeid.RequireTrustDomainFromString(name)
	doc, err := spiffebundle.FromX509Bundle(testca.New(t, ftd).X509Bundle()).Marshal()
	require.NoError(t, err)
	return doc
}

// RandomHex returns 16 random hexadecimal digits.
func RandomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
