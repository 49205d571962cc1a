package attestation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	caller = endpoint.Caller{PID: 1234, UID: 1000, GID: 1000}
	uid    = attest.Selector{Type: "unix", Value: "uid:1000"}
	hash   = attest.Selector{Type: "unix", Value: "sha256:ab"}
)

// attestor answers with the selectors of the kinds it is asked for, as
// attest/unix does: uid always, the hash only when an entry needs it.
type attestor struct {
	err   error
	calls atomic.Int32
	seen  attest.Workload
}

func (a *attestor) Attest(_ context.Context, w attest.Workload) (attest.Selectors, error) {
	a.calls.Add(1)
	a.seen = w
	if a.err != nil {
		return attest.Selectors{}, a.err
	}
	sels := []attest.Selector{uid}
	if w.Needed("unix", "sha256") {
		sels = append(sels, hash)
	}
	w.Needed("unix", "sha256") // asked twice: recorded once
	return attest.NewSelectors(sels...), nil
}

// observer records what it is told.
type observer struct {
	mu       sync.Mutex
	outcomes []string
}

func (o *observer) WorkloadAttested(outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, outcome)
}

func newAttestor(t *testing.T, a attest.WorkloadAttestor) (*Attestor, registry.Store, *index.Index, *observer, *logtest.Buffer) {
	t.Helper()
	store := memstore.New(memstore.Config{})
	idx, err := index.New(t.Context(), store, index.Config{})
	require.NoError(t, err)
	o, log := &observer{}, &logtest.Buffer{}
	return &Attestor{Attestor: a, Index: idx, Observer: o, Log: log.Logger()}, store, idx, o, log
}

// What an entry does not need is skipped and recorded; once an entry
// needs it, the attestation is stale, and a fresh one has it.
func TestAttestSkipsWhatNoEntryNeeds(t *testing.T) {
	a := &attestor{}
	att, store, idx, o, _ := newAttestor(t, a)
	got, err := att.Attest(t.Context(), caller)
	require.NoError(t, err)
	require.Equal(t, []attest.Selector{uid}, got.Selectors)
	require.Equal(t, &attest.Credentials{UID: 1000, GID: 1000}, a.seen.Credentials)
	require.Equal(t, 1234, a.seen.PID)
	require.False(t, att.Stale(got))
	require.Equal(t, []string{OutcomeOK}, o.outcomes)

	_, err = store.Create(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
		Selectors: []attest.Selector{hash},
	})
	require.NoError(t, err)
	_, err = idx.Sync(t.Context())
	require.NoError(t, err)
	require.True(t, att.Stale(got))
	require.False(t, att.Stale(Attested{}), "the zero value is never stale")

	fresh, err := att.Fresh(t.Context(), caller, 4)
	require.NoError(t, err)
	require.Equal(t, []attest.Selector{hash, uid}, fresh.Selectors)
	require.False(t, att.Stale(fresh))
}

// Fresh gives up after the rounds it is given, with the last attestation.
func TestFreshIsBounded(t *testing.T) {
	att, store, idx, _, _ := newAttestor(t, nil)
	// Each attestation skips a kind that an entry comes to use right after:
	// every one is stale.
	calls := 0
	att.Attestor = attestorFunc(func(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
		calls++
		kind := fmt.Sprint("k", calls)
		require.False(t, w.Needed("t", kind))
		_, err := store.Create(ctx, registry.Entry{
			SPIFFEID:  spiffeid.RequireFromPath(td, "/"+kind),
			ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
			Selectors: []attest.Selector{{Type: "t", Value: kind + ":x"}},
		})
		require.NoError(t, err)
		_, err = idx.Sync(ctx)
		require.NoError(t, err)
		return attest.NewSelectors(uid), nil
	})
	got, err := att.Fresh(t.Context(), caller, 2)
	require.NoError(t, err)
	require.Equal(t, []attest.Selector{uid}, got.Selectors)
	require.Equal(t, 3, calls)
	require.True(t, att.Stale(got))
}

type attestorFunc func(context.Context, attest.Workload) (attest.Selectors, error)

func (f attestorFunc) Attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	return f(ctx, w)
}

func TestAttestFailures(t *testing.T) {
	t.Run("no kernel credentials", func(t *testing.T) {
		a := &attestor{}
		att, _, _, o, _ := newAttestor(t, a)
		_, err := att.Attest(t.Context(), endpoint.Caller{PID: -1, UID: -1, GID: -1})
		require.ErrorIs(t, err, endpoint.ErrNoIdentity)
		require.Zero(t, a.calls.Load(), "the attestor was asked")
		require.Empty(t, o.outcomes)
	})
	t.Run("rejected", func(t *testing.T) {
		att, _, _, o, _ := newAttestor(t, &attestor{err: attest.ErrRejected})
		_, err := att.Attest(t.Context(), caller)
		require.ErrorIs(t, err, endpoint.ErrNoIdentity)
		require.ErrorIs(t, err, attest.ErrRejected)
		require.Equal(t, []string{OutcomeRejected}, o.outcomes)
	})
	t.Run("failed", func(t *testing.T) {
		att, _, _, o, _ := newAttestor(t, &attestor{err: errors.New("no /proc")})
		_, err := att.Attest(t.Context(), caller)
		require.ErrorIs(t, err, endpoint.ErrUnavailable)
		require.ErrorContains(t, err, "attesting pid 1234: no /proc")
		require.Equal(t, []string{OutcomeError}, o.outcomes)
	})
	t.Run("cut short", func(t *testing.T) {
		att, _, _, o, _ := newAttestor(t, &attestor{err: errors.New("interrupted")})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := att.Attest(ctx, caller)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{OutcomeError}, o.outcomes)
	})
	t.Run("without an observer", func(t *testing.T) {
		att, _, _, _, _ := newAttestor(t, &attestor{err: attest.ErrRejected})
		att.Observer = nil
		_, err := att.Attest(t.Context(), caller)
		require.ErrorIs(t, err, endpoint.ErrNoIdentity)
	})
}

// At Debug, each attestation logs what an operator needs to write the
// entry a caller lacks.
func TestAttestLogsTheSelectors(t *testing.T) {
	att, _, _, _, _ := newAttestor(t, &attestor{})
	log := &logtest.Buffer{}
	att.Log = log.Logger()
	_, err := att.Attest(t.Context(), caller)
	require.NoError(t, err)
	require.True(t, log.Contains("caller attested"))
	require.True(t, log.Contains("unix:uid:1000"))
}
