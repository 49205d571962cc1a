package issuer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// ourHash is the unix:sha256 selector of this test binary.
func ourHash(t testing.TB) attest.Selector {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(exe)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return attest.Selector{Type: "unix", Value: "sha256:" + hex.EncodeToString(sum[:])}
}

// recordingAttestor passes each attestation to next, and records whether
// next was told a sha256 selector is needed, and what it returned. After
// the call numbered in hooks (from 1), it runs the hook.
type recordingAttestor struct {
	next  attest.WorkloadAttestor
	hooks map[int]func()

	mu     sync.Mutex
	needed []bool
	got    []attest.Selectors
}

func (r *recordingAttestor) Attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	var told bool
	needed := w.Needed
	w.Needed = func(typ, kind string) bool {
		ok := needed(typ, kind)
		if typ == "unix" && kind == "sha256" {
			told = ok
		}
		return ok
	}
	sels, err := r.next.Attest(ctx, w)
	r.mu.Lock()
	r.needed = append(r.needed, told)
	r.got = append(r.got, sels)
	hook := r.hooks[len(r.got)]
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
	return sels, err
}

// calls returns, for each attestation so far, whether a hash was needed
// and whether the selectors held one.
func (r *recordingAttestor) calls() (needed, hashed []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.got {
		needed = append(needed, r.needed[i])
		h := false
		for s := range r.got[i].All() {
			h = h || s.Kind() == "sha256"
		}
		hashed = append(hashed, h)
	}
	return needed, hashed
}

func defaultUnix(t testing.TB) attest.WorkloadAttestor {
	t.Helper()
	a, err := unix.New(unix.Config{})
	require.NoError(t, err)
	return a
}

// TestHashOnlyWhenNeeded checks that the issuer tells its attestor which
// selector kinds the registry uses, so that the unix attestor hashes the
// caller's executable only while an entry selects a hash, and that an open
// stream is attested again when the first such entry appears.
func TestHashOnlyWhenNeeded(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	rec := &recordingAttestor{next: defaultUnix(t)}
	e := newEnv(t, issuer.Config{Attestor: rec})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	w := watch(t, c)
	require.Len(t, w.next(t).SVIDs, 1)
	needed, hashed := rec.calls()
	assert.Equal(t, []bool{false}, needed)
	assert.Equal(t, []bool{false}, hashed, "the executable was not hashed")

	// The first entry that selects a hash: the stream is attested again,
	// with the hash, and gets that entry's SVID too.
	hashID := spiffeid.RequireFromPath(td, "/hashed")
	hashed2 := e.register(t, registry.Entry{SPIFFEID: hashID, Selectors: []attest.Selector{ourUID, ourHash(t)}})
	u := w.next(t)
	require.Len(t, u.SVIDs, 2)
	needed, hashed = rec.calls()
	assert.Equal(t, []bool{false, true}, needed)
	assert.Equal(t, []bool{false, true}, hashed)

	// A new caller is hashed at once, for X509- and JWT-SVIDs alike.
	svids, err := c.FetchX509SVIDs(t.Context())
	require.NoError(t, err)
	assert.Len(t, svids, 2)
	jwt, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "x", Subject: hashID})
	require.NoError(t, err)
	assert.Equal(t, hashID, jwt.ID)

	// Once no entry selects a hash, nobody is hashed again.
	e.remove(t, hashed2)
	require.Len(t, w.next(t).SVIDs, 1)
	needed, _ = rec.calls()
	before := len(needed)
	_, err = c.FetchX509SVIDs(t.Context())
	require.NoError(t, err)
	needed, hashed = rec.calls()
	assert.Equal(t, []bool{false}, needed[before:])
	assert.Equal(t, []bool{false}, hashed[before:])
}

// TestNeededDuringAttestation checks the race of an entry that comes to
// need a skipped selector while the caller is being attested, after the
// attestor skipped it: the caller is attested again before its entries
// are looked up.
func TestNeededDuringAttestation(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	hashID := spiffeid.RequireFromPath(td, "/hashed")
	rec := &recordingAttestor{next: defaultUnix(t)}
	e := newEnv(t, issuer.Config{Attestor: rec})
	rec.hooks = map[int]func(){
		1: func() {
			e.register(t, registry.Entry{SPIFFEID: hashID, Selectors: []attest.Selector{ourUID, ourHash(t)}})
		},
	}
	e.register(t, registry.Entry{SPIFFEID: webID})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	assert.Len(t, sub.Snapshot().RawX509SVIDs, 2)
	needed, hashed := rec.calls()
	assert.Equal(t, []bool{false, true}, needed)
	assert.Equal(t, []bool{false, true}, hashed)

	// The same for a JWT-SVID.
	rec2 := &recordingAttestor{next: defaultUnix(t)}
	e2 := newEnv(t, issuer.Config{Attestor: rec2})
	rec2.hooks = map[int]func(){
		1: func() {
			e2.register(t, registry.Entry{SPIFFEID: hashID, Selectors: []attest.Selector{ourUID, ourHash(t)}})
		},
	}
	e2.register(t, registry.Entry{SPIFFEID: webID})
	jwts, err := e2.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}, ID: hashID})
	require.NoError(t, err)
	require.Len(t, jwts, 1)
	needed, _ = rec2.calls()
	assert.Equal(t, []bool{false, true}, needed)
}

// flakyAttestor answers each call with the next of its answers (the last
// one repeated): an error, or the caller's uid and, when it is needed,
// the hash of its executable.
type flakyAttestor struct {
	hash    attest.Selector
	mu      sync.Mutex
	answers []error // nil: selectors
}

func (f *flakyAttestor) Attest(_ context.Context, w attest.Workload) (attest.Selectors, error) {
	f.mu.Lock()
	err := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	f.mu.Unlock()
	hash := w.Needed("unix", "sha256")
	if err != nil {
		return attest.Selectors{}, err
	}
	if hash {
		return attest.NewSelectors(ourUID, f.hash), nil
	}
	return attest.NewSelectors(ourUID), nil
}

// TestReattestOutcomes checks what becomes of an open stream whose caller
// is attested again: rejected, it loses its identities; failing, it keeps
// them until a later try succeeds.
func TestReattestOutcomes(t *testing.T) {
	hashEntry := registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/hashed"), Selectors: []attest.Selector{ourUID, ourHash(t)}}
	t.Run("rejected", func(t *testing.T) {
		t.Cleanup(leaktest.Check(t))
		gone := fmt.Errorf("unix: process executes another file: %w", attest.ErrRejected)
		e := newEnv(t, issuer.Config{Attestor: &flakyAttestor{hash: ourHash(t), answers: []error{nil, gone}}})
		e.serve(t)
		e.register(t, registry.Entry{SPIFFEID: webID})
		w := watch(t, e.client(t))
		require.Len(t, w.next(t).SVIDs, 1)
		e.register(t, hashEntry)
		requireCode(t, codes.PermissionDenied, w.nextErr(t))
	})
	t.Run("failing", func(t *testing.T) {
		t.Cleanup(leaktest.Check(t))
		logs := &logtest.Buffer{}
		f := &flakyAttestor{hash: ourHash(t), answers: []error{nil, errors.New("proc unreadable")}}
		e := newEnv(t, issuer.Config{Attestor: f, Logger: logs.Logger()})
		e.serve(t)
		e.register(t, registry.Entry{SPIFFEID: webID})
		w := watch(t, e.client(t))
		require.Len(t, w.next(t).SVIDs, 1)
		e.register(t, hashEntry)
		require.Eventually(t, func() bool { return logs.Contains("attesting a caller again failed") }, 10*time.Second, 10*time.Millisecond)
		// The stream keeps its view; the next refresh tries again, and
		// this time the caller gets the new entry's SVID too.
		f.mu.Lock()
		f.answers = []error{nil}
		f.mu.Unlock()
		require.NoError(t, e.iss.Sync(t.Context()))
		require.Len(t, w.next(t).SVIDs, 2)
	})
}
