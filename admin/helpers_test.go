package admin_test

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
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// tokenIssuer makes random tokens and remembers the last request.
type tokenIssuer struct {
	mu      sync.Mutex
	ttl     time.Duration
	agentID spiffeid.ID
	err     error
}

func (ti *tokenIssuer) GenerateToken(_ context.Context, ttl time.Duration, agentID spiffeid.ID) (string, time.Time, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ti.err != nil {
		return "", time.Time{}, ti.err
	}
	ti.ttl, ti.agentID = ttl, agentID
	return "tok-" + rand.Text(), time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), nil
}

func (ti *tokenIssuer) setErr(err error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.err = err
}

type env struct {
	client *admin.Client
	path   string
	store  *memstore.Store
	tokens *tokenIssuer
	ca     *testca.CA
	log    *logtest.Buffer
	bundle func() *spiffebundle.Bundle
}

// start serves the admin API on a fresh socket until the test ends.
func start(t *testing.T, modify ...func(*admin.Config)) *env {
	t.Helper()
	return startAt(t, filepath.Join(t.TempDir(), "admin.sock"), modify...)
}

// startAt is start with the socket at path.
func startAt(t *testing.T, path string, modify ...func(*admin.Config)) *env {
	t.Helper()
	e := &env{
		path:   path,
		store:  memstore.New(memstore.Config{}),
		tokens: &tokenIssuer{},
		ca:     testca.New(t, td),
		log:    &logtest.Buffer{},
	}
	own := spiffebundle.FromX509Bundle(e.ca.X509Bundle())
	cfg := admin.Config{
		TrustDomain: td,
		Entries:     e.store,
		Agents:      e.store,
		Bundles:     e.store,
		Tokens:      e.tokens,
		Bundle:      func() *spiffebundle.Bundle { return own },
		Logger:      slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range modify {
		m(&cfg)
	}
	srv, err := admin.New(cfg)
	require.NoError(t, err)
	lis, err := admin.ListenUnix(e.path)
	require.NoError(t, err)
	serve(t, srv, lis)
	e.client = admin.Dial(e.path)
	t.Cleanup(func() { e.client.Close() })
	return e
}

// serve runs srv on lis until the test ends, and checks that Serve
// returns nil once stopped.
func serve(t *testing.T, srv *admin.Server, lis net.Listener) {
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

// raw sends a hand-made request on the socket, for inputs the Client
// never produces, and returns the status and body.
func raw(t *testing.T, path, method, target string, body io.Reader) (int, string) {
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

func entry(path string, selectors ...string) registry.Entry {
	e := registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, path),
		ParentID: spiffeid.RequireFromPath(td, "/agent/node1"),
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

// foreignDoc returns the SPIFFE bundle document of a fresh CA of trust
// domain name.
func foreignDoc(t *testing.T, name string) []byte {
	t.Helper()
	ftd := spiffeid.RequireTrustDomainFromString(name)
	doc, err := spiffebundle.FromX509Bundle(testca.New(t, ftd).X509Bundle()).Marshal()
	require.NoError(t, err)
	return doc
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
