package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// newWITEnv is a running issuer over a CA with WIT keys (unless noWIT),
// served with the WIT profile on. signer, when not nil, wraps the local
// signer.
func newWITEnv(t *testing.T, noWIT bool, cfg issuer.Config, signer func(*issuer.LocalSigner) issuer.Signer) *env {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: !noWIT})
	require.NoError(t, err)
	a, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	cfg.Registry, cfg.Attestor, cfg.Trust = store, a, issuer.TrustFromAuthority(m)
	local := issuer.NewLocalSigner(m)
	cfg.Signer = local
	if signer != nil {
		cfg.Signer = signer(local)
	}
	iss, err := issuer.New(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, iss.Close()) })
	run(t, iss)
	e := &env{ca: m, store: store, iss: iss}

	dir, err := os.MkdirTemp("", "wit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "wl.sock"), 0o700)
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: iss, WIT: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	e.addr = "unix://" + lis.Addr().String()
	return e
}

func TestFetchWITSVIDs(t *testing.T) {
	e := newWITEnv(t, false, issuer.Config{}, nil)
	e.register(t, registry.Entry{SPIFFEID: webID, Hint: "web"})
	e.register(t, registry.Entry{SPIFFEID: dbID, Hint: "db"})
	c := e.client(t)

	svids, err := c.FetchWITSVIDs(t.Context(), "")
	require.NoError(t, err)
	require.Len(t, svids, 2)
	bundles, err := c.FetchWITBundles(t.Context())
	require.NoError(t, err)
	for k, want := range []struct {
		id   string
		hint string
	}{{dbID.String(), "db"}, {webID.String(), "web"}} {
		s := svids[k]
		assert.Equal(t, want.id, s.ID.String())
		assert.Equal(t, want.hint, s.Hint)
		// The token validates against the WIT bundle the Workload API
		// serves, and binds the private key served with it.
		v, err := witsvid.ParseAndValidate(s.Marshal(), bundles)
		require.NoError(t, err)
		assert.Equal(t, s.ID, v.ID)
		assert.True(t, v.PublicKey.(*ecdsa.PublicKey).Equal(s.PrivateKey.(crypto.Signer).Public()))
		assert.Equal(t, "ES256", v.KeyAlgorithm())
		assert.Equal(t, e.ca.WITAuthority().KeyID(), v.KeyID)
		assert.WithinDuration(t, time.Now().Add(ca.DefaultWITSVIDTTL), v.Expiry, time.Minute)
	}

	// Cached per entry: another call gets the same tokens.
	again, err := c.FetchWITSVID(t.Context(), webID.String())
	require.NoError(t, err)
	assert.Equal(t, svids[1].Marshal(), again.Marshal())

	// The other methods work as before, without WIT-SVIDs.
	x, err := c.FetchX509SVIDs(t.Context())
	require.NoError(t, err)
	assert.Len(t, x, 2)
}

// witWatcher collects the updates and errors of a WIT-SVID watch.
type witWatcher struct {
	updates chan []*witsvid.SVID
	errs    chan error
}

func watchWIT(t *testing.T, c *workloadapi.Client) *witWatcher {
	w := &witWatcher{updates: make(chan []*witsvid.SVID, 16), errs: make(chan error, 16)}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.WatchWITSVIDs(ctx, w, "") })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

func (w *witWatcher) OnWITSVIDsUpdate(s []*witsvid.SVID) { w.updates <- s }
func (w *witWatcher) OnWITSVIDsWatchError(err error) {
	select {
	case w.errs <- err:
	default:
	}
}

func (w *witWatcher) next(t *testing.T) []*witsvid.SVID {
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

func (w *witWatcher) nextErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.errs:
		return err
	case u := <-w.updates:
		t.Fatalf("update instead of an error: %v", u)
	case <-time.After(10 * time.Second):
		t.Fatal("no error within 10s")
	}
	return nil
}

// TestWITSVIDsRenewedAtHalfLife: a watching caller gets a new WIT-SVID,
// for a new key, once the one it holds is past half its life; and new
// entries, and the loss of its identity, as they happen.
func TestWITSVIDsRenewedAtHalfLife(t *testing.T) {
	e := newWITEnv(t, false, issuer.Config{WITSVIDTTL: 4 * time.Second}, nil)
	web := e.register(t, registry.Entry{SPIFFEID: webID})
	w := watchWIT(t, e.client(t))

	first := w.next(t)
	require.Len(t, first, 1)
	second := w.next(t)
	require.Len(t, second, 1)
	assert.NotEqual(t, first[0].Marshal(), second[0].Marshal(), "renewed")
	assert.False(t, first[0].PublicKey.(*ecdsa.PublicKey).Equal(second[0].PublicKey), "for a new key")
	assert.False(t, second[0].Expiry.Before(first[0].Expiry))

	db := e.register(t, registry.Entry{SPIFFEID: dbID})
	for {
		u := w.next(t)
		if len(u) == 2 {
			break
		}
	}
	e.remove(t, web)
	for {
		u := w.next(t)
		if len(u) == 1 {
			assert.Equal(t, dbID, u[0].ID)
			break
		}
	}
	e.remove(t, db)
	requireCode(t, codes.PermissionDenied, w.nextErr(t))
}

// TestWITSVIDsNotOffered: without a WIT key at the CA, or with a signer
// that cannot have WIT-SVIDs signed, FetchWITSVID answers Unimplemented,
// which clients do not retry (WIT rule 17).
func TestWITSVIDsNotOffered(t *testing.T) {
	for name, newEnv := range map[string]func(t *testing.T) *env{
		"no WIT key": func(t *testing.T) *env { return newWITEnv(t, true, issuer.Config{}, nil) },
		"not a WITSigner": func(t *testing.T) *env {
			return newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer { return plainSigner{l} })
		},
		"not a WITIssuer": newPlainAuthorityEnv,
		"signer says none": func(t *testing.T) *env {
			return newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer {
				return failingWIT{LocalSigner: l, err: fmt.Errorf("no: %w", endpoint.ErrUnimplemented)}
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.register(t, registry.Entry{SPIFFEID: webID})
			_, err := e.client(t).FetchWITSVID(t.Context(), "")
			requireCode(t, codes.Unimplemented, err)
		})
	}
}

// newPlainAuthorityEnv is an issuer whose CA is an Authority and nothing
// more.
func newPlainAuthorityEnv(t *testing.T) *env {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	return newWITEnv(t, true, issuer.Config{}, func(*issuer.LocalSigner) issuer.Signer {
		return issuer.NewLocalSigner(plainAuthority{m})
	})
}

type plainAuthority struct{ ca.Authority }

// plainSigner hides every capability of a Signer but the interface.
type plainSigner struct{ issuer.Signer }

// failingWIT fails the WIT-SVIDs of entries in fail (every one when fail
// is nil) with err, or returns one for another key when wrongKey.
type failingWIT struct {
	*issuer.LocalSigner
	err      error
	fail     map[string]bool
	wrongKey bool
	calls    *atomic.Int32
}

func (f failingWIT) SignWITSVID(ctx context.Context, req issuer.WITSVIDRequest) (string, error) {
	if f.calls != nil {
		f.calls.Add(1)
	}
	if f.wrongKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", err
		}
		req.Key = k
		return f.LocalSigner.SignWITSVID(ctx, req)
	}
	if f.fail == nil || f.fail[req.Entry.SPIFFEID.String()] {
		return "", f.err
	}
	return f.LocalSigner.SignWITSVID(ctx, req)
}

// TestWITSVIDFailures: a WIT-SVID that cannot be signed costs the caller
// that one only; none at all is Unavailable, which clients retry; a
// WIT-SVID that binds another key than the one the issuer generated is
// never served.
func TestWITSVIDFailures(t *testing.T) {
	broken := errors.New("signer broken")
	e := newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer {
		return failingWIT{LocalSigner: l, err: broken, fail: map[string]bool{dbID.String(): true}}
	})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID})
	svids, err := e.client(t).FetchWITSVIDs(t.Context(), "")
	require.NoError(t, err)
	require.Len(t, svids, 1)
	assert.Equal(t, webID, svids[0].ID)

	e = newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer {
		return failingWIT{LocalSigner: l, err: broken}
	})
	e.register(t, registry.Entry{SPIFFEID: webID})
	_, err = e.client(t).FetchWITSVID(t.Context(), "")
	requireCode(t, codes.Unavailable, err)

	e = newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer {
		return failingWIT{LocalSigner: l, wrongKey: true}
	})
	e.register(t, registry.Entry{SPIFFEID: webID})
	_, err = e.client(t).FetchWITSVID(t.Context(), "")
	requireCode(t, codes.Unavailable, err)
}

// TestWITSVIDNoIdentity: a caller no entry applies to gets
// PermissionDenied, as for every other method.
func TestWITSVIDNoIdentity(t *testing.T) {
	e := newWITEnv(t, false, issuer.Config{}, nil)
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID, Selectors: []attest.Selector{otherUID}})
	c := e.client(t)
	_, err := c.FetchWITSVID(t.Context(), dbID.String())
	requireCode(t, codes.PermissionDenied, err) // another caller's identity
	_, err = c.FetchWITSVID(t.Context(), webID.String())
	require.NoError(t, err)
}

// TestWITSVIDsReplacedWhenKeyRevoked: a WIT-SVID whose signing key leaves
// the bundle (revoked) is replaced at once for the callers watching, and
// never served again.
func TestWITSVIDsReplacedWhenKeyRevoked(t *testing.T) {
	e := newWITEnv(t, false, issuer.Config{}, nil)
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	w := watchWIT(t, c)
	first := w.next(t)
	require.Len(t, first, 1)
	oldKid := first[0].KeyID

	_, err := e.ca.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateWITKey(t.Context()))
	// Still valid under the old key, which stays in the bundle: kept.
	again, err := c.FetchWITSVID(t.Context(), "")
	require.NoError(t, err)
	assert.Equal(t, first[0].Marshal(), again.Marshal())

	require.NoError(t, e.ca.RevokeWITKey(t.Context(), oldKid))
	for {
		u := w.next(t)
		require.Len(t, u, 1)
		if u[0].KeyID != oldKid {
			assert.Equal(t, e.ca.WITAuthority().KeyID(), u[0].KeyID)
			break
		}
	}
	fresh, err := c.FetchWITSVID(t.Context(), "")
	require.NoError(t, err)
	assert.NotEqual(t, oldKid, fresh.KeyID)
}
