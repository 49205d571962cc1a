package wpt_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// trustDomain is a WIT authority of one trust domain.
type trustDomain struct {
	td        spiffeid.TrustDomain
	key       *ecdsa.PrivateKey
	authority *ca.WITAuthority
}

func newTrustDomain(tb testing.TB, name string) *trustDomain {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	td := spiffeid.RequireTrustDomainFromString(name)
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, TrustDomain: td})
	require.NoError(tb, err)
	return &trustDomain{td: td, key: key, authority: a}
}

func (d *trustDomain) bundle() *witbundle.Bundle {
	b := witbundle.New(d.td)
	if err := b.AddWITAuthority(d.authority.KeyID(), d.authority.PublicKey()); err != nil {
		panic(err)
	}
	return b
}

func (d *trustDomain) id(path string) spiffeid.ID {
	return spiffeid.RequireFromPath(d.td, path)
}

// svid mints a WIT-SVID for path bound to a new P-256 key, with that key.
func (d *trustDomain) svid(tb testing.TB, path string) *witsvid.SVID {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	return d.svidFor(tb, path, key, "")
}

func (d *trustDomain) svidFor(tb testing.TB, path string, key crypto.Signer, alg string) *witsvid.SVID {
	tb.Helper()
	token, err := d.authority.SignWITSVID(context.Background(), ca.WITSVIDParams{
		ID: d.id(path), PublicKey: key.Public(), KeyAlgorithm: alg, TTL: time.Hour,
	})
	require.NoError(tb, err)
	svid, err := witsvid.ParseInsecure(token)
	require.NoError(tb, err)
	svid.PrivateKey = key
	return svid
}

func rsaKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(tb, err)
	return key
}

// workloadAPI serves the WIT-SVIDs of d to this process's uid through a real
// Workload API server on a unix socket, and returns a live WITSource over
// it and the handler, whose snapshot a test may replace.
func workloadAPI(tb testing.TB, d *trustDomain, svids ...*witsvid.SVID) (*workloadapi.WITSource, func(...*witsvid.SVID)) {
	tb.Helper()
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	set := func(svids ...*witsvid.SVID) {
		bundle := spiffebundle.FromWITAuthorities(d.td, map[string]crypto.PublicKey{d.authority.KeyID(): d.authority.PublicKey()})
		snap := &endpoint.Snapshot{TrustDomain: d.td, Bundles: []*spiffebundle.Bundle{bundle}}
		for _, s := range svids {
			key, err := jose.JSONWebKey{Key: s.PrivateKey}.MarshalJSON()
			require.NoError(tb, err)
			snap.WITSVIDs = append(snap.WITSVIDs, endpoint.WITSVID{ID: s.ID, Token: s.Marshal(), Key: string(key)})
		}
		require.NoError(tb, handler.Set(strconv.Itoa(os.Getuid()), snap))
	}
	set(svids...)

	// A short directory: a unix socket's path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "wpt")
	require.NoError(tb, err)
	tb.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	lis, err := endpoint.ListenUnix(sock, 0o700)
	require.NoError(tb, err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler, WIT: true})
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	tb.Cleanup(func() {
		cancel()
		<-done
	})

	source, err := workloadapi.NewWITSource(tb.Context(),
		workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+sock)))
	require.NoError(tb, err)
	tb.Cleanup(func() { source.Close() })
	return source, set
}

// rawToken signs claims as a JWS with the given header type, for tests that
// build WPTs Mint would never make.
func rawToken(tb testing.TB, key any, alg jose.SignatureAlgorithm, typ string, claims map[string]any) string {
	tb.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	require.NoError(tb, err)
	payload, err := json.Marshal(claims)
	require.NoError(tb, err)
	jws, err := s.Sign(payload)
	require.NoError(tb, err)
	token, err := jws.CompactSerialize()
	require.NoError(tb, err)
	return token
}

// clock is a settable time for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
