package issuer_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	parentID = spiffeid.RequireFromPath(td, "/issuer")
	webID    = spiffeid.RequireFromPath(td, "/web")
	dbID     = spiffeid.RequireFromPath(td, "/db")
	ourUID   = attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	otherUID = attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid()+4242)}
)

// env is a whole issuer: CA, registry, attestor, Run under way, and, when
// served, a Workload API socket.
type env struct {
	ca    *rotation.Manager
	store registry.Store
	iss   *issuer.Issuer
	addr  string
}

// newEnv builds an issuer over a memstore unless cfg.Registry is set, with
// the real CA manager (as Trust and Signer unless set) and unix attestor,
// and runs it until the test ends. Fields of cfg left zero get test
// defaults.
func newEnv(t testing.TB, cfg issuer.Config) *env {
	t.Helper()
	e := newIdleEnv(t, cfg)
	run(t, e.iss)
	return e
}

// newIdleEnv is newEnv without Run.
func newIdleEnv(t testing.TB, cfg issuer.Config) *env {
	t.Helper()
	ctx := t.Context()
	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	if cfg.Registry == nil {
		cfg.Registry = memstore.New(memstore.Config{})
	}
	if cfg.Attestor == nil {
		a, err := unix.New(unix.Config{SkipHash: true})
		require.NoError(t, err)
		cfg.Attestor = a
	}
	if cfg.Trust == nil {
		cfg.Trust = issuer.TrustFromAuthority(m)
	}
	if cfg.Signer == nil {
		cfg.Signer = issuer.NewLocalSigner(m)
	}
	iss, err := issuer.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, iss.Close()) })
	return &env{ca: m, store: cfg.Registry.(registry.Store), iss: iss}
}

// run runs iss until the test ends, when Run must have returned nil.
func run(t testing.TB, iss *issuer.Issuer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- iss.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// serve serves the Workload API with the issuer as its handler on a
// socket until the test ends, and returns its address.
func (e *env) serve(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "iss") // short: socket paths are limited to 108 bytes
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "wl.sock"), 0o700)
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: e.iss})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	e.addr = "unix://" + lis.Addr().String()
	return e.addr
}

func (e *env) client(t testing.TB) *workloadapi.Client {
	t.Helper()
	c, err := workloadapi.New(t.Context(), workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) register(t testing.TB, entry registry.Entry) registry.Entry {
	t.Helper()
	if entry.ParentID.IsZero() {
		entry.ParentID = parentID
	}
	if entry.Selectors == nil {
		entry.Selectors = []attest.Selector{ourUID}
	}
	got, err := e.store.Create(t.Context(), entry)
	require.NoError(t, err)
	require.NoError(t, e.iss.Sync(t.Context()))
	return got
}

func (e *env) remove(t testing.TB, entry registry.Entry) {
	t.Helper()
	_, err := e.store.Delete(t.Context(), entry.ID, 0)
	require.NoError(t, err)
	require.NoError(t, e.iss.Sync(t.Context()))
}

// rotate prepares and activates a new X.509 CA and returns its ID.
func (e *env) rotate(t testing.TB) string {
	t.Helper()
	next, err := e.ca.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateX509CA(t.Context()))
	return next.ID
}

// self is this process as the Workload API server sees it.
func self() endpoint.Caller {
	return endpoint.Caller{PID: os.Getpid(), UID: os.Geteuid(), GID: os.Getegid()}
}

func requireCode(t testing.TB, want codes.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, status.Code(err), "error: %v", err)
}

// watcher collects the updates and errors of a Workload API watch.
type watcher struct {
	updates chan *workloadapi.X509Context
	errs    chan error
}

func watch(t testing.TB, c *workloadapi.Client) *watcher {
	t.Helper()
	w := &watcher{updates: make(chan *workloadapi.X509Context, 16), errs: make(chan error, 16)}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.WatchX509Context(ctx, w) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

func (w *watcher) OnX509ContextUpdate(u *workloadapi.X509Context) { w.updates <- u }
func (w *watcher) OnX509ContextWatchError(err error) {
	select {
	case w.errs <- err:
	default:
	}
}

// next waits for the next update.
func (w *watcher) next(t testing.TB) *workloadapi.X509Context {
	t.Helper()
	select {
	case u := <-w.updates:
		return u
	case err := <-w.errs:
		t.Fatalf("watch error instead of an update: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return nil
}

// nextErr waits for the next watch error.
func (w *watcher) nextErr(t testing.TB) error {
	t.Helper()
	select {
	case err := <-w.errs:
		return err
	case u := <-w.updates:
		t.Fatalf("update instead of an error: %v", u.SVIDs)
	case <-time.After(10 * time.Second):
		t.Fatal("no error within 10s")
	}
	return nil
}

var _ index.Source = (*memstore.Store)(nil)

// parseRaw parses an SVID of a Snapshot as a Workload API client would,
// checking that the leaf names its ID and certifies its key.
func parseRaw(t testing.TB, s *endpoint.RawX509SVID) *x509svid.SVID {
	t.Helper()
	svid, err := x509svid.ParseRaw(bytes.Join(s.Certificates, nil), s.PrivateKey)
	require.NoError(t, err)
	require.Equal(t, s.ID, svid.ID)
	svid.Hint = s.Hint
	return svid
}

// rawLeaf returns the parsed leaf of an SVID of a Snapshot.
func rawLeaf(t testing.TB, s *endpoint.RawX509SVID) *x509.Certificate {
	t.Helper()
	return parseRaw(t, s).Certificates[0]
}
