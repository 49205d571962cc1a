// Package workloadtest runs a spiffekit Workload API server for the
// conformance tests: real authorities for an own and a federated trust
// domain, X509-, JWT- and WIT-SVIDs minted by package ca, and an
// endpoint.Server on a unix socket in a short temporary directory.
//
//	f := workloadtest.New(t)
//	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, f.WebID, ""))))
//	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
//	client, err := workloadapi.New(ctx, workloadapi.WithAddr(srv.Addr))
package workloadtest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Trust domains and IDs used throughout the conformance tests.
var (
	TD    = spiffeid.RequireTrustDomainFromString("example.org")
	FedTD = spiffeid.RequireTrustDomainFromString("federated.test")
	WebID = spiffeid.RequireFromPath(TD, "/web")
	DBID  = spiffeid.RequireFromPath(TD, "/db")
)

// Fixture holds the authorities of TD and FedTD, their bundles and a
// MemoryHandler keyed by UID.
type Fixture struct {
	X509, FedX509 *ca.X509Authority
	JWT, FedJWT   *ca.JWTAuthority
	WIT           *ca.WITAuthority

	// Own is TD's bundle (X.509, JWT and WIT authorities); Federated is
	// FedTD's (X.509 and JWT).
	Own, Federated *spiffebundle.Bundle

	// Handler serves what Set gives each UID; UID is this process's.
	Handler *endpoint.MemoryHandler
	UID     string
}

// New returns a fixture with fresh P-256 keys.
func New(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{UID: strconv.Itoa(os.Getuid())}
	f.X509 = newX509Authority(t, TD)
	f.FedX509 = newX509Authority(t, FedTD)
	var err error
	f.JWT, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: NewKey(t), TrustDomain: TD})
	require.NoError(t, err)
	f.FedJWT, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: NewKey(t), TrustDomain: FedTD})
	require.NoError(t, err)
	f.WIT, err = ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: NewKey(t), TrustDomain: TD, KeyID: "wit-1"})
	require.NoError(t, err)

	f.Own = spiffebundle.FromX509Authorities(TD, []*x509.Certificate{f.X509.Certificate()})
	require.NoError(t, f.Own.AddJWTAuthority(f.JWT.KeyID(), f.JWT.PublicKey()))
	require.NoError(t, f.Own.AddWITAuthority(f.WIT.KeyID(), f.WIT.PublicKey()))
	f.Federated = spiffebundle.FromX509Authorities(FedTD, []*x509.Certificate{f.FedX509.Certificate()})
	require.NoError(t, f.Federated.AddJWTAuthority(f.FedJWT.KeyID(), f.FedJWT.PublicKey()))

	f.Handler = endpoint.NewMemoryHandler(endpoint.MemoryConfig{SignJWT: f.SignJWT})
	return f
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func newX509Authority(t testing.TB, td spiffeid.TrustDomain) *ca.X509Authority {
	t.Helper()
	key := NewKey(t)
	root, err := ca.CreateRoot(context.Background(), ca.RootParams{Signer: key, TrustDomain: td})
	require.NoError(t, err)
	a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root})
	require.NoError(t, err)
	return a
}

// SignJWT mints a JWT-SVID with the authority of id's trust domain; it is
// the Handler's MemoryConfig.SignJWT.
func (f *Fixture) SignJWT(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
	a := f.JWT
	if id.MemberOf(FedTD) {
		a = f.FedJWT
	}
	return a.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience})
}

// SVID mints an X509-SVID for id (in TD or FedTD) with a fresh key.
func (f *Fixture) SVID(t testing.TB, id spiffeid.ID, hint string) *x509svid.SVID {
	t.Helper()
	a := f.X509
	if id.MemberOf(FedTD) {
		a = f.FedX509
	}
	key := NewKey(t)
	chain, err := a.SignX509SVID(context.Background(), ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	require.NoError(t, err)
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key, Hint: hint}
}

// WITSVID mints a WIT-SVID for id (in TD) bound to a fresh key, with the
// key as the JWK JSON document the Workload API carries.
func (f *Fixture) WITSVID(t testing.TB, id spiffeid.ID, hint string) endpoint.WITSVID {
	t.Helper()
	key := NewKey(t)
	token, err := f.WIT.SignWITSVID(context.Background(), ca.WITSVIDParams{ID: id, PublicKey: key.Public()})
	require.NoError(t, err)
	return endpoint.WITSVID{ID: id, Token: token, Key: JWK(t, key, "ES256"), Hint: hint}
}

// JWK renders key as a JWK JSON document with alg.
func JWK(t testing.TB, key crypto.PrivateKey, alg string) string {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, Algorithm: alg}.MarshalJSON()
	require.NoError(t, err)
	return string(b)
}

// Snapshot is a view of TD with svids, both bundles and no WIT-SVID.
func (f *Fixture) Snapshot(svids ...*x509svid.SVID) *endpoint.Snapshot {
	return &endpoint.Snapshot{TrustDomain: TD, X509SVIDs: svids, Bundles: []*spiffebundle.Bundle{f.Own, f.Federated}}
}

// Server is an endpoint.Server serving on a unix socket until Stop or the
// end of the test.
type Server struct {
	// Path is the socket's path; Addr the same as a "unix://" address.
	Path, Addr string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

// SocketPath returns a socket path in a fresh short temporary directory
// (unix socket paths are limited to 108 bytes), removed after the test.
func SocketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cf")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "agent.sock")
}

// Serve runs a server for cfg on a fresh socket until the test ends.
func Serve(t testing.TB, cfg endpoint.Config) *Server {
	t.Helper()
	path := SocketPath(t)
	s := &Server{Path: path, Addr: "unix://" + path}
	s.Start(t, cfg)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

// Start serves cfg on s.Path; the server must be stopped.
func (s *Server) Start(t testing.TB, cfg endpoint.Config) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Nil(t, s.cancel, "server already running")
	lis, err := endpoint.ListenUnix(s.Path, 0o770)
	require.NoError(t, err)
	srv, err := endpoint.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	s.cancel, s.done = cancel, done
}

// Stop stops the server and waits for Serve to return; it returns Serve's
// error. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	err := <-s.done
	s.cancel, s.done = nil, nil
	return err
}

// VerifyNone fails t if goroutines other than those opts ignore (such as
// goleak.IgnoreCurrent() taken before the code under test ran) are still
// running ten seconds later. No slack: one goroutine fails it, and the
// failure lists each with its stack (go.uber.org/goleak).
func VerifyNone(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines leaked: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ErrTimeout is returned by Recv when nothing arrives in time.
var ErrTimeout = errors.New("workloadtest: timed out")

// Recv returns the next value of ch, or ErrTimeout after timeout.
func Recv[T any](ch <-chan T, timeout time.Duration) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-time.After(timeout):
		var zero T
		return zero, ErrTimeout
	}
}
