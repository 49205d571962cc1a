package registrytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A NodeStore keeps every node-side record: a backend that implements all
// four node-side store interfaces.
type NodeStore interface {
	registry.AgentStore
	registry.TokenStore
	registry.BundleStore
	registry.ServerBundleStore
}

// RunNode runs the contract suite of the node-side stores against stores
// made by newStore, which must return a new, empty store each time it is
// called and release it with t.Cleanup. The store's clock must be the real
// one (within a second).
func RunNode(t *testing.T, newStore func(t *testing.T) NodeStore) {
	t.Run("AgentPutGet", func(t *testing.T) { testAgentPutGet(t, newStore(t)) })
	t.Run("AgentReplace", func(t *testing.T) { testAgentReplace(t, newStore(t)) })
	t.Run("AgentBanKept", func(t *testing.T) { testAgentBanKept(t, newStore(t)) })
	t.Run("AgentUpdate", func(t *testing.T) { testAgentUpdate(t, newStore(t)) })
	t.Run("AgentUpdateNeverRecreates", func(t *testing.T) {
		s := newStore(t)
		AgentUpdateNeverRecreates(t, []registry.AgentStore{s}, 20)
	})
	t.Run("AgentListDelete", func(t *testing.T) { testAgentListDelete(t, newStore(t)) })
	t.Run("AgentInvalid", func(t *testing.T) { testAgentInvalid(t, newStore(t)) })
	t.Run("AgentLongestSelectors", func(t *testing.T) { testAgentLongestSelectors(t, newStore(t)) })
	t.Run("TokenCreateGet", func(t *testing.T) { testTokenCreateGet(t, newStore(t)) })
	t.Run("TokenInvalid", func(t *testing.T) { testTokenInvalid(t, newStore(t)) })
	t.Run("TokenDelete", func(t *testing.T) { testTokenDelete(t, newStore(t)) })
	t.Run("TokenPrune", func(t *testing.T) { testTokenPrune(t, newStore(t)) })
	t.Run("TokenSingleUse", func(t *testing.T) { testTokenSingleUse(t, newStore(t)) })
	t.Run("Bundles", func(t *testing.T) { testBundles(t, newStore(t)) })
	t.Run("BundleInvalid", func(t *testing.T) { testBundleInvalid(t, newStore(t)) })
	t.Run("ServerBundles", func(t *testing.T) { testServerBundles(t, newStore(t)) })
	t.Run("ServerBundleInvalid", func(t *testing.T) { testServerBundleInvalid(t, newStore(t)) })
	t.Run("ServerAuthorities", func(t *testing.T) { testServerAuthorities(t, newStore(t)) })
	t.Run("AuthorityMarks", func(t *testing.T) { testAuthorityMarks(t, newStore(t)) })
	t.Run("AuthorityMarkInvalid", func(t *testing.T) { testAuthorityMarkInvalid(t, newStore(t)) })
	t.Run("NodeCanceledContext", func(t *testing.T) { testNodeCanceled(t, newStore(t)) })
}

// TokenSingleUse creates rounds tokens one after another, races calls
// concurrent DeleteToken calls for each, spread over the given stores
// (which must share their data, as servers on one database do), and checks
// that exactly one call per token reports true. It is part of [RunNode]; backends shared by
// several processes also call it with several stores.
func TokenSingleUse(t *testing.T, stores []registry.TokenStore, rounds, calls int) {
	t.Helper()
	require.NotEmpty(t, stores)
	ctx := t.Context()
	for round := range rounds {
		tok := token(fmt.Sprintf("race-%d", round), time.Now().Add(time.Hour))
		require.NoError(t, stores[0].CreateToken(ctx, tok))
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		start := make(chan struct{})
		for i := range calls {
			s := stores[i%len(stores)]
			wg.Go(func() {
				<-start
				won, err := s.DeleteToken(ctx, tok.ID)
				if err != nil {
					errs <- err
					return
				}
				if won {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		// A join token admits one node, however many servers race for it.
		require.Equal(t, int32(1), wins.Load(), "round %d: calls that consumed token %q", round, tok.ID)
		for _, s := range stores {
			_, err := s.GetToken(ctx, tok.ID)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}
	}
}

func agent(path string, sels ...attest.Selector) registry.Agent {
	return registry.Agent{
		ID:           id(path),
		AttestorType: "join_token",
		Selectors:    sels,
		SerialNumber: "1f",
		ExpiresAt:    time.Now().Add(time.Hour),
	}
}

func token(tokenID string, expires time.Time) registry.JoinToken {
	sum := sha256.Sum256([]byte("secret of " + tokenID))
	return registry.JoinToken{ID: tokenID, SecretHash: sum[:], ExpiresAt: expires}
}

// inWindow checks that a store-set time lies in [before, after], allowing
// for StoreTime's truncation to the microsecond.
func inWindow(t testing.TB, got, before, after time.Time) {
	t.Helper()
	assert.Equal(t, registry.StoreTime(got), got, "time not in store form")
	assert.False(t, got.Before(before.Truncate(time.Microsecond)), "%v is before %v", got, before)
	assert.False(t, got.After(after), "%v is after %v", got, after)
}

func testAgentPutGet(t *testing.T, s NodeStore) {
	ctx := t.Context()
	in := agent("/spire/agent/join_token/abc", sel("join_token", "abc"), sel("aws", "region:eu"), sel("aws", "account:1"))
	in.ExpiresAt = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	in.PreviousSerialNumber = "0a"
	in.CanReattest = true
	before := time.Now()
	got, err := s.PutAgent(ctx, in)
	after := time.Now()
	require.NoError(t, err)

	want := in
	want.Selectors = []attest.Selector{sel("aws", "account:1"), sel("aws", "region:eu"), sel("join_token", "abc")}
	want.ExpiresAt = registry.StoreTime(in.ExpiresAt)
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	assert.Equal(t, want, got, "selectors sorted, times in store form")
	assert.Equal(t, "join_token", in.Selectors[0].Type, "the caller's slice is not sorted in place")
	inWindow(t, got.CreatedAt, before, after)
	assert.Equal(t, got.CreatedAt, got.UpdatedAt)

	again, err := s.GetAgent(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, got, again)

	// The store keeps copies: changing what was given or returned changes
	// nothing stored.
	in.Selectors[0].Value = "changed"
	got.Selectors[0].Value = "changed"
	again.Selectors[1].Value = "changed"
	stored, err := s.GetAgent(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, want.Selectors, stored.Selectors)

	// No selectors and no expiry (no SVID yet) are kept as such.
	bare := registry.Agent{ID: id("/bare"), AttestorType: "x509pop"}
	got, err = s.PutAgent(ctx, bare)
	require.NoError(t, err)
	again, err = s.GetAgent(ctx, bare.ID)
	require.NoError(t, err)
	assert.Equal(t, got, again)
	assert.Empty(t, again.Selectors)
	assert.True(t, again.ExpiresAt.IsZero())
	assert.Empty(t, again.SerialNumber)
}

// testAgentBanKept: replacing a banned record with one that is not banned
// (a server that read the record before the ban) keeps the ban, and
// replaces the rest; the record returned says so. Deleting the record
// lifts the ban.
func testAgentBanKept(t *testing.T, s NodeStore) {
	ctx := t.Context()
	first, err := s.PutAgent(ctx, agent("/node", sel("join_token", "abc")))
	require.NoError(t, err)
	banned := first
	banned.Banned = true
	_, err = s.PutAgent(ctx, banned)
	require.NoError(t, err)

	stale := first // read before the ban
	stale.SerialNumber, stale.PreviousSerialNumber = "2b", first.SerialNumber
	got, err := s.PutAgent(ctx, stale)
	require.NoError(t, err)
	assert.True(t, got.Banned, "the record returned keeps the ban")
	assert.Equal(t, "2b", got.SerialNumber)
	stored, err := s.GetAgent(ctx, first.ID)
	require.NoError(t, err)
	assert.True(t, stored.Banned, "the stored record keeps the ban")
	assert.Equal(t, got, stored)

	require.NoError(t, s.DeleteAgent(ctx, first.ID))
	got, err = s.PutAgent(ctx, stale)
	require.NoError(t, err)
	assert.False(t, got.Banned, "deleting the record lifts the ban")
}

func testAgentReplace(t *testing.T, s NodeStore) {
	ctx := t.Context()
	first, err := s.PutAgent(ctx, agent("/node", sel("join_token", "abc")))
	require.NoError(t, err)

	next := first
	next.SerialNumber, next.PreviousSerialNumber = "2a", first.SerialNumber
	next.Selectors = []attest.Selector{sel("x509pop", "subject:cn:node")}
	next.AttestorType = "x509pop"
	next.ExpiresAt = first.ExpiresAt.Add(time.Hour)
	next.Banned = true
	next.CreatedAt = time.Unix(1, 0) // set by the store: ignored
	before := time.Now()
	got, err := s.PutAgent(ctx, next)
	after := time.Now()
	require.NoError(t, err)
	assert.Equal(t, first.CreatedAt, got.CreatedAt, "replacing keeps CreatedAt")
	inWindow(t, got.UpdatedAt, before, after)
	assert.False(t, got.UpdatedAt.Before(first.UpdatedAt))

	want := next
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	assert.Equal(t, want, got)
	stored, err := s.GetAgent(ctx, first.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)

	list, err := s.ListAgents(ctx)
	require.NoError(t, err)
	assert.Equal(t, []registry.Agent{want}, list, "a replaced record is not duplicated")
}

// testAgentUpdate: UpdateAgent replaces a record as PutAgent does (keeping
// CreatedAt and a ban), but only a record that exists: it creates none,
// before the record was ever written or after it was deleted.
func testAgentUpdate(t *testing.T, s NodeStore) {
	ctx := t.Context()
	missing := agent("/node", sel("join_token", "abc"))
	_, err := s.UpdateAgent(ctx, missing)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), missing.ID.String(), "the error names the agent")
	_, err = s.GetAgent(ctx, missing.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "no record was created")

	first, err := s.PutAgent(ctx, missing)
	require.NoError(t, err)
	next := first
	next.SerialNumber, next.PreviousSerialNumber = "2a", first.SerialNumber
	next.Selectors = []attest.Selector{sel("x509pop", "subject:cn:node"), sel("x509pop", "ca:fingerprint:00")}
	next.ExpiresAt = first.ExpiresAt.Add(time.Hour)
	next.CanReattest = true
	next.CreatedAt = time.Unix(1, 0) // set by the store: ignored
	before := time.Now()
	got, err := s.UpdateAgent(ctx, next)
	after := time.Now()
	require.NoError(t, err)
	assert.Equal(t, first.CreatedAt, got.CreatedAt, "updating keeps CreatedAt")
	inWindow(t, got.UpdatedAt, before, after)
	want := next
	want.Selectors = []attest.Selector{sel("x509pop", "ca:fingerprint:00"), sel("x509pop", "subject:cn:node")}
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	assert.Equal(t, want, got, "selectors sorted")
	assert.Equal(t, "subject:cn:node", next.Selectors[0].Value, "the caller's slice is not sorted in place")
	stored, err := s.GetAgent(ctx, first.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)

	// A ban is kept, and the record returned says so.
	banned := stored
	banned.Banned = true
	_, err = s.PutAgent(ctx, banned)
	require.NoError(t, err)
	got, err = s.UpdateAgent(ctx, stored) // read before the ban
	require.NoError(t, err)
	assert.True(t, got.Banned, "the record returned keeps the ban")
	stored, err = s.GetAgent(ctx, first.ID)
	require.NoError(t, err)
	assert.True(t, stored.Banned, "the stored record keeps the ban")

	// Invalid records are refused whether or not there is one to update.
	invalid := stored
	invalid.AttestorType = ""
	_, err = s.UpdateAgent(ctx, invalid)
	require.ErrorIs(t, err, registry.ErrInvalid)

	// Deleted, the record stays deleted.
	require.NoError(t, s.DeleteAgent(ctx, first.ID))
	_, err = s.UpdateAgent(ctx, next)
	require.ErrorIs(t, err, registry.ErrNotFound)
	list, err := s.ListAgents(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "no record was created")
}

// AgentUpdateNeverRecreates races, rounds times, an UpdateAgent of a record
// against its DeleteAgent, each through one of stores (which must share
// their data, as servers on one database do; one store is fine), and
// checks that the record is gone afterwards whichever came first: an
// update that found the record gone wrote nothing, and DeleteAgent always
// found a record to delete. It is part of [RunNode]; backends shared by
// several processes also call it with several stores.
func AgentUpdateNeverRecreates(t *testing.T, stores []registry.AgentStore, rounds int) {
	t.Helper()
	require.NotEmpty(t, stores)
	ctx := t.Context()
	for round := range rounds {
		a, err := stores[0].PutAgent(ctx, agent(fmt.Sprintf("/race-%d", round)))
		require.NoError(t, err)
		renewed := a
		renewed.SerialNumber, renewed.PreviousSerialNumber = "2b", a.SerialNumber
		var updateErr, deleteErr error
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, updateErr = stores[round%len(stores)].UpdateAgent(ctx, renewed)
		})
		wg.Go(func() {
			<-start
			deleteErr = stores[(round+1)%len(stores)].DeleteAgent(ctx, a.ID)
		})
		close(start)
		wg.Wait()
		require.NoError(t, deleteErr, "round %d: the record was there to delete", round)
		if updateErr != nil {
			require.ErrorIs(t, updateErr, registry.ErrNotFound, "round %d", round)
		}
		for _, s := range stores {
			_, err := s.GetAgent(ctx, a.ID)
			require.ErrorIs(t, err, registry.ErrNotFound, "round %d: the update brought the deleted record back", round)
		}
	}
}

func testAgentListDelete(t *testing.T, s NodeStore) {
	ctx := t.Context()
	list, err := s.ListAgents(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	// IDs that differ in punctuation and case: the order is by bytes, not by
	// a database's locale.
	paths := []string{"/ab", "/a_b", "/aB", "/a-b", "/a/b", "/a.b", "/b", "/A", "/a", "/a/b/c"}
	for _, p := range paths {
		_, err := s.PutAgent(ctx, agent(p))
		require.NoError(t, err)
	}
	list, err = s.ListAgents(ctx)
	require.NoError(t, err)
	var got []string
	for _, a := range list {
		got = append(got, a.ID.String())
	}
	want := []string{td + "/A", td + "/a", td + "/a-b", td + "/a.b", td + "/a/b", td + "/a/b/c", td + "/aB", td + "/a_b", td + "/ab", td + "/b"}
	assert.Equal(t, want, got)

	list[0].Selectors = append(list[0].Selectors, sel("changed", "x"))
	stored, err := s.GetAgent(ctx, list[0].ID)
	require.NoError(t, err)
	assert.Empty(t, stored.Selectors, "listed records are copies")

	require.NoError(t, s.DeleteAgent(ctx, id("/a/b")))
	_, err = s.GetAgent(ctx, id("/a/b"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, `registry: agent "`+id("/a/b").String()+`" not found`, "the wording fits the object")
	require.ErrorIs(t, s.DeleteAgent(ctx, id("/a/b")), registry.ErrNotFound)
	require.ErrorIs(t, s.DeleteAgent(ctx, id("/never")), registry.ErrNotFound)
	require.ErrorIs(t, s.DeleteAgent(ctx, spiffeid.ID{}), registry.ErrNotFound)
	_, err = s.GetAgent(ctx, id("/never"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.GetAgent(ctx, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrNotFound)
	// The same path in another trust domain is another agent.
	_, err = s.GetAgent(ctx, spiffeid.RequireFromString("spiffe://other.org/a"))
	require.ErrorIs(t, err, registry.ErrNotFound)

	list, err = s.ListAgents(ctx)
	require.NoError(t, err)
	assert.Len(t, list, len(paths)-1)
}

func testAgentInvalid(t *testing.T, s NodeStore) {
	ctx := t.Context()
	tooMany := make([]attest.Selector, registry.MaxSelectors+1)
	for i := range tooMany {
		tooMany[i] = sel("t", fmt.Sprint(i))
	}
	tests := []struct {
		name   string
		mutate func(*registry.Agent)
	}{
		{"zero ID", func(a *registry.Agent) { a.ID = spiffeid.ID{} }},
		{"ID without path", func(a *registry.Agent) { a.ID = spiffeid.RequireFromString(td) }},
		{"ID too long", func(a *registry.Agent) { a.ID = id("/" + strings.Repeat("a", registry.MaxIDLen)) }},
		{"no attestor type", func(a *registry.Agent) { a.AttestorType = "" }},
		{"attestor type too long", func(a *registry.Agent) { a.AttestorType = strings.Repeat("a", registry.MaxAttestorTypeLen+1) }},
		{"attestor type with control character", func(a *registry.Agent) { a.AttestorType = "join\ntoken" }},
		{"attestor type not UTF-8", func(a *registry.Agent) { a.AttestorType = "join\xff" }},
		{"too many selectors", func(a *registry.Agent) { a.Selectors = tooMany }},
		{"invalid selector", func(a *registry.Agent) { a.Selectors = []attest.Selector{sel("", "x")} }},
		{"selector not UTF-8", func(a *registry.Agent) { a.Selectors = []attest.Selector{sel("t", "\xc3")} }},
		{"duplicate selector", func(a *registry.Agent) { a.Selectors = []attest.Selector{sel("t", "x"), sel("t", "x")} }},
		{"upper-case serial", func(a *registry.Agent) { a.SerialNumber = "1F" }},
		{"serial not hex", func(a *registry.Agent) { a.SerialNumber = "xyz" }},
		{"serial too long", func(a *registry.Agent) { a.SerialNumber = strings.Repeat("f", registry.MaxSerialNumberLen+1) }},
		{"previous serial not hex", func(a *registry.Agent) { a.PreviousSerialNumber = "-1" }},
		{"expiry out of range", func(a *registry.Agent) { a.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := agent("/node", sel("join_token", "abc"))
			tt.mutate(&a)
			_, err := s.PutAgent(ctx, a)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "registry: agent ")
		})
	}
	list, err := s.ListAgents(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing invalid was stored")
}

func testTokenCreateGet(t *testing.T, s NodeStore) {
	ctx := t.Context()
	in := token("tok_1-A", time.Date(2031, 5, 6, 7, 8, 9, 999999999, time.UTC))
	require.NoError(t, s.CreateToken(ctx, in))
	got, err := s.GetToken(ctx, in.ID)
	require.NoError(t, err)
	want := in.Clone()
	want.ExpiresAt = registry.StoreTime(in.ExpiresAt)
	assert.Equal(t, want, got)

	// Copies both ways.
	in.SecretHash[0] ^= 0xff
	got.SecretHash[1] ^= 0xff
	again, err := s.GetToken(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, want, again)

	withAgent := token(strings.Repeat("z", registry.MaxTokenIDLen), time.Now().Add(time.Hour))
	withAgent.AgentID = id("/spire/agent/custom")
	require.NoError(t, s.CreateToken(ctx, withAgent))
	got, err = s.GetToken(ctx, withAgent.ID)
	require.NoError(t, err)
	assert.Equal(t, withAgent.AgentID, got.AgentID)

	// A token is created once: a second one with the same ID is refused and
	// leaves the first as it was.
	dup := token(in.ID, time.Now().Add(time.Hour))
	require.ErrorIs(t, s.CreateToken(ctx, dup), registry.ErrAlreadyExists)
	again, err = s.GetToken(ctx, in.ID)
	require.NoError(t, err)
	assert.Equal(t, want, again)

	// An expired token is still found until pruned; callers check ExpiresAt.
	old := token("expired", time.Now().Add(-time.Hour))
	require.NoError(t, s.CreateToken(ctx, old))
	_, err = s.GetToken(ctx, old.ID)
	require.NoError(t, err)

	for _, missing := range []string{"missing", "", "a b", "x'; DROP TABLE registry_join_tokens; --", "nul\x00", strings.Repeat("a", 10000)} {
		_, err = s.GetToken(ctx, missing)
		require.ErrorIs(t, err, registry.ErrNotFound, "%.20q", missing)
		assert.NotContains(t, err.Error(), strings.Repeat("a", 100), "unbounded input in the error")
	}
	// Token IDs are case-sensitive.
	_, err = s.GetToken(ctx, strings.ToUpper(in.ID))
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func testTokenInvalid(t *testing.T, s NodeStore) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*registry.JoinToken)
	}{
		{"empty ID", func(tk *registry.JoinToken) { tk.ID = "" }},
		{"ID too long", func(tk *registry.JoinToken) { tk.ID = strings.Repeat("a", registry.MaxTokenIDLen+1) }},
		{"ID with space", func(tk *registry.JoinToken) { tk.ID = "a b" }},
		{"ID with slash", func(tk *registry.JoinToken) { tk.ID = "a/b" }},
		{"ID with dot", func(tk *registry.JoinToken) { tk.ID = "a.b" }},
		{"ID not ASCII", func(tk *registry.JoinToken) { tk.ID = "tökén" }},
		{"no hash", func(tk *registry.JoinToken) { tk.SecretHash = nil }},
		{"short hash", func(tk *registry.JoinToken) { tk.SecretHash = tk.SecretHash[:31] }},
		{"long hash", func(tk *registry.JoinToken) { tk.SecretHash = append(tk.SecretHash, 0) }},
		{"agent ID without path", func(tk *registry.JoinToken) { tk.AgentID = spiffeid.RequireFromString(td) }},
		{"agent ID too long", func(tk *registry.JoinToken) { tk.AgentID = id("/" + strings.Repeat("a", registry.MaxIDLen)) }},
		{"no expiry", func(tk *registry.JoinToken) { tk.ExpiresAt = time.Time{} }},
		{"expiry out of range", func(tk *registry.JoinToken) { tk.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := token("valid", time.Now().Add(time.Hour))
			tt.mutate(&tk)
			err := s.CreateToken(ctx, tk)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "registry: join token ")
			if len(tk.SecretHash) >= 4 {
				assert.NotContains(t, err.Error(), fmt.Sprintf("%x", tk.SecretHash[:4]), "the hash stays out of errors")
			}
		})
	}
	_, err := s.GetToken(ctx, "valid")
	require.ErrorIs(t, err, registry.ErrNotFound, "nothing invalid was stored")
}

func testTokenDelete(t *testing.T, s NodeStore) {
	ctx := t.Context()
	tk := token("one-use", time.Now().Add(time.Hour))
	require.NoError(t, s.CreateToken(ctx, tk))
	other := token("other", time.Now().Add(time.Hour))
	require.NoError(t, s.CreateToken(ctx, other))

	deleted, err := s.DeleteToken(ctx, tk.ID)
	require.NoError(t, err)
	assert.True(t, deleted)
	deleted, err = s.DeleteToken(ctx, tk.ID)
	require.NoError(t, err)
	assert.False(t, deleted, "a token is consumed once")
	_, err = s.GetToken(ctx, tk.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.GetToken(ctx, other.ID)
	require.NoError(t, err, "deleting one token leaves the others")

	for _, missing := range []string{"never", "", "bad id", strings.Repeat("a", 10000)} {
		deleted, err = s.DeleteToken(ctx, missing)
		require.NoError(t, err)
		assert.False(t, deleted)
	}
	// Once deleted, the ID may be used again.
	require.NoError(t, s.CreateToken(ctx, tk))
}

func testTokenPrune(t *testing.T, s NodeStore) {
	ctx := t.Context()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	n, err := s.PruneTokens(ctx, now)
	require.NoError(t, err)
	assert.Zero(t, n)

	// Before the Unix epoch, where microsecond counts are negative.
	pre := time.Unix(-1, 999999000).UTC()
	require.NoError(t, s.CreateToken(ctx, token("pre-epoch", pre)))
	n, err = s.PruneTokens(ctx, pre)
	require.NoError(t, err)
	assert.Zero(t, n, "a token expiring at t has not expired before t")
	n, err = s.PruneTokens(ctx, pre.Add(500*time.Nanosecond))
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	expiries := map[string]time.Time{
		"long-ago":   now.Add(-48 * time.Hour),
		"just-gone":  now.Add(-time.Microsecond),
		"at-now":     now,
		"later":      now.Add(time.Hour),
		"much-later": now.Add(24 * time.Hour),
	}
	for tokenID, exp := range expiries {
		require.NoError(t, s.CreateToken(ctx, token(tokenID, exp)))
	}
	n, err = s.PruneTokens(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "tokens that expired before now")
	for tokenID, exp := range expiries {
		_, err := s.GetToken(ctx, tokenID)
		if exp.Before(now) {
			assert.ErrorIs(t, err, registry.ErrNotFound, tokenID)
		} else {
			assert.NoError(t, err, tokenID)
		}
	}
	n, err = s.PruneTokens(ctx, now)
	require.NoError(t, err)
	assert.Zero(t, n, "pruning again removes nothing")

	// Half a microsecond after "at-now" expired, it has expired before.
	n, err = s.PruneTokens(ctx, now.Add(500*time.Nanosecond))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = s.GetToken(ctx, "at-now")
	require.ErrorIs(t, err, registry.ErrNotFound)

	n, err = s.PruneTokens(ctx, now.Add(1000*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func testTokenSingleUse(t *testing.T, s NodeStore) {
	TokenSingleUse(t, []registry.TokenStore{s}, 5, 16)

	// Concurrent creations of one ID: exactly one succeeds.
	ctx := t.Context()
	const calls = 8
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			tk := token("contended", time.Now().Add(time.Hour))
			tk.SecretHash[0] = byte(i)
			if err := s.CreateToken(ctx, tk); err != nil {
				errs <- err
				return
			}
			created.Add(1)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.ErrorIs(t, err, registry.ErrAlreadyExists)
	}
	assert.Equal(t, int32(1), created.Load())
}

func testBundles(t *testing.T, s NodeStore) {
	ctx := t.Context()
	list, err := s.ListBundles(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)

	tdA := spiffeid.RequireTrustDomainFromString("a.example")
	doc := []byte(`{"keys":[]}`)
	before := time.Now()
	got, err := s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: tdA, Document: doc, UpdatedAt: time.Unix(1, 0)})
	after := time.Now()
	require.NoError(t, err)
	assert.Equal(t, tdA, got.TrustDomain)
	assert.Equal(t, doc, got.Document)
	inWindow(t, got.UpdatedAt, before, after)
	stored, err := s.GetBundle(ctx, tdA)
	require.NoError(t, err)
	assert.Equal(t, got, stored)

	// Copies both ways.
	doc[0] = 'X'
	got.Document[1] = 'X'
	stored.Document[2] = 'X'
	again, err := s.GetBundle(ctx, tdA)
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"keys":[]}`), again.Document)

	// Put replaces.
	doc2 := []byte(`{"keys":[{"kty":"EC"}],"spiffe_sequence":2}`)
	replaced, err := s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: tdA, Document: doc2})
	require.NoError(t, err)
	assert.False(t, replaced.UpdatedAt.Before(got.UpdatedAt))
	again, err = s.GetBundle(ctx, tdA)
	require.NoError(t, err)
	assert.Equal(t, replaced, again)

	// The largest document allowed is kept byte for byte, whatever it holds.
	big := bytes.Repeat([]byte{0, 0xff, '"', '\n'}, registry.MaxBundleDocument/4)
	tdBig := spiffeid.RequireTrustDomainFromString("big.example")
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: tdBig, Document: big})
	require.NoError(t, err)
	again, err = s.GetBundle(ctx, tdBig)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, again.Document), "document changed in the store")

	for _, name := range []string{"b-c.example", "b.example", "b_c.example", "a-z.example", "b1.example"} {
		_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: spiffeid.RequireTrustDomainFromString(name), Document: []byte("{}")})
		require.NoError(t, err)
	}
	list, err = s.ListBundles(ctx)
	require.NoError(t, err)
	var names []string
	for _, b := range list {
		names = append(names, b.TrustDomain.Name())
	}
	assert.Equal(t, []string{"a-z.example", "a.example", "b-c.example", "b.example", "b1.example", "b_c.example", "big.example"}, names,
		"ordered by name, byte by byte")
	list[1].Document[0] = 'X'
	again, err = s.GetBundle(ctx, tdA)
	require.NoError(t, err)
	assert.Equal(t, doc2, again.Document, "listed bundles are copies")

	require.NoError(t, s.DeleteBundle(ctx, tdA))
	_, err = s.GetBundle(ctx, tdA)
	require.ErrorIs(t, err, registry.ErrNotFound)
	require.ErrorIs(t, s.DeleteBundle(ctx, tdA), registry.ErrNotFound)
	require.ErrorIs(t, s.DeleteBundle(ctx, spiffeid.TrustDomain{}), registry.ErrNotFound)
	_, err = s.GetBundle(ctx, spiffeid.RequireTrustDomainFromString("never.example"))
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.GetBundle(ctx, spiffeid.TrustDomain{})
	require.ErrorIs(t, err, registry.ErrNotFound)
	list, err = s.ListBundles(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 6)
}

func testBundleInvalid(t *testing.T, s NodeStore) {
	ctx := t.Context()
	tdA := spiffeid.RequireTrustDomainFromString("a.example")
	tests := []struct {
		name string
		b    registry.FederatedBundle
	}{
		{"zero trust domain", registry.FederatedBundle{Document: []byte("{}")}},
		{"no document", registry.FederatedBundle{TrustDomain: tdA}},
		{"empty document", registry.FederatedBundle{TrustDomain: tdA, Document: []byte{}}},
		{"document too large", registry.FederatedBundle{TrustDomain: tdA, Document: make([]byte, registry.MaxBundleDocument+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.PutBundle(ctx, tt.b)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "registry: federated bundle ")
		})
	}
	list, err := s.ListBundles(ctx)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing invalid was stored")
}

func testServerBundles(t *testing.T, s NodeStore) {
	ctx := t.Context()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	list, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	assert.Empty(t, list)

	put := func(serverID string, expires time.Time, doc string) registry.ServerBundle {
		t.Helper()
		b := registry.ServerBundle{ServerID: serverID, Document: []byte(doc), ExpiresAt: expires, UpdatedAt: time.Unix(1, 0)}
		require.NoError(t, s.PutServerBundle(ctx, b))
		return b
	}
	listIDs := func(at time.Time) []string {
		t.Helper()
		list, err := s.ListServerBundles(ctx, at)
		require.NoError(t, err)
		var out []string
		for _, b := range list {
			out = append(out, b.ServerID)
		}
		return out
	}
	before := time.Now()
	put("server-b", now.Add(time.Hour), `{"b":1}`)
	after := time.Now()
	put("server-a", now.Add(2*time.Hour+123456789), `{"a":1}`)
	put("server-c", now.Add(-time.Second), `{"c":1}`)
	put("server-at-now", now, `{"n":1}`)
	put("server-1us", now.Add(time.Microsecond), `{"u":1}`)
	put("Server-Z", now.Add(time.Hour), `{"z":1}`)
	put("server_d", now.Add(time.Hour), `{"d":1}`)

	list, err = s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	require.Len(t, list, 5)
	assert.Equal(t, "server-a", list[2].ServerID)
	assert.Equal(t, []byte(`{"a":1}`), list[2].Document)
	assert.Equal(t, registry.StoreTime(now.Add(2*time.Hour+123456789)), list[2].ExpiresAt)
	assert.Equal(t, "server-b", list[3].ServerID)
	inWindow(t, list[3].UpdatedAt, before, after)
	// Expired contributions, and one that lapses at now, are left out; the
	// order is by server ID, byte by byte.
	assert.Equal(t, []string{"Server-Z", "server-1us", "server-a", "server-b", "server_d"}, listIDs(now))
	// Half a microsecond before now, "server-at-now" has not yet lapsed.
	assert.Equal(t, []string{"Server-Z", "server-1us", "server-a", "server-at-now", "server-b", "server-c", "server_d"}, listIDs(now.Add(-time.Second-time.Nanosecond)))
	assert.Contains(t, listIDs(now.Add(-500*time.Nanosecond)), "server-at-now")
	put("pre-epoch", time.Unix(-1, 999999000), `{"p":1}`)
	assert.Contains(t, listIDs(time.Unix(-1, 999998500)), "pre-epoch")
	assert.NotContains(t, listIDs(time.Unix(-1, 999999000)), "pre-epoch")
	assert.NotContains(t, listIDs(now.Add(time.Microsecond)), "server-1us")
	assert.Empty(t, listIDs(now.Add(3*time.Hour)))

	// Copies: changing a listed document changes nothing stored.
	list[0].Document[0] = 'X'
	again, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, []byte(`{"z":1}`), again[0].Document)

	// Put replaces, and renewing revives an expired contribution.
	put("server-c", now.Add(time.Hour), `{"c":2}`)
	again, err = s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	require.Len(t, again, 6)
	assert.Equal(t, "server-c", again[4].ServerID)
	assert.Equal(t, []byte(`{"c":2}`), again[4].Document)
	put("server-b", now.Add(-time.Hour), `{"b":2}`)
	assert.NotContains(t, listIDs(now), "server-b", "a contribution can be withdrawn by expiring it")

	// The caller's slice is not kept.
	doc := []byte(`{"e":1}`)
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "server-e", Document: doc, ExpiresAt: now.Add(time.Hour)}))
	doc[0] = 'X'
	again, err = s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	for _, b := range again {
		if b.ServerID == "server-e" {
			assert.Equal(t, []byte(`{"e":1}`), b.Document)
		}
	}
}

func testServerBundleInvalid(t *testing.T, s NodeStore) {
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		b    registry.ServerBundle
	}{
		{"no server ID", registry.ServerBundle{Document: []byte("{}"), ExpiresAt: exp}},
		{"server ID too long", registry.ServerBundle{ServerID: strings.Repeat("s", registry.MaxServerIDLen+1), Document: []byte("{}"), ExpiresAt: exp}},
		{"server ID with control character", registry.ServerBundle{ServerID: "a\x00b", Document: []byte("{}"), ExpiresAt: exp}},
		{"server ID not UTF-8", registry.ServerBundle{ServerID: "a\xffb", Document: []byte("{}"), ExpiresAt: exp}},
		{"no document", registry.ServerBundle{ServerID: "s", ExpiresAt: exp}},
		{"document too large", registry.ServerBundle{ServerID: "s", Document: make([]byte, registry.MaxBundleDocument+1), ExpiresAt: exp}},
		{"no expiry", registry.ServerBundle{ServerID: "s", Document: []byte("{}")}},
		{"expiry out of range", registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"invalid authority", registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
			Authorities: []registry.ServerAuthority{{Kind: "rsa", ID: "k", State: registry.AuthorityOld, NotAfter: exp}}}},
		{"duplicate authority", registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
			Authorities: []registry.ServerAuthority{jwtAuthority("k", exp), jwtAuthority("k", exp)}}},
		{"too many authorities", registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: exp,
			Authorities: make([]registry.ServerAuthority, registry.MaxServerAuthorities+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.PutServerBundle(ctx, tt.b)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "registry: ")
		})
	}
	list, err := s.ListServerBundles(ctx, time.Time{})
	require.NoError(t, err)
	assert.Empty(t, list, "nothing invalid was stored")
}

func testNodeCanceled(t *testing.T, s NodeStore) {
	a, err := s.PutAgent(t.Context(), agent("/node"))
	require.NoError(t, err)
	tk := token("tok", time.Now().Add(time.Hour))
	require.NoError(t, s.CreateToken(t.Context(), tk))
	tdA := spiffeid.RequireTrustDomainFromString("a.example")
	_, err = s.PutBundle(t.Context(), registry.FederatedBundle{TrustDomain: tdA, Document: []byte("{}")})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.PutAgent(ctx, agent("/other"))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.UpdateAgent(ctx, a)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.GetAgent(ctx, a.ID)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListAgents(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.DeleteAgent(ctx, a.ID), context.Canceled)
	assert.ErrorIs(t, s.CreateToken(ctx, token("tok2", time.Now().Add(time.Hour))), context.Canceled)
	_, err = s.GetToken(ctx, tk.ID)
	assert.ErrorIs(t, err, context.Canceled)
	deleted, err := s.DeleteToken(ctx, tk.ID)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, deleted)
	_, err = s.PruneTokens(ctx, time.Now().Add(10*time.Hour))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: tdA, Document: []byte("[]")})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.GetBundle(ctx, tdA)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListBundles(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.DeleteBundle(ctx, tdA), context.Canceled)
	assert.ErrorIs(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: time.Now().Add(time.Hour)}), context.Canceled)
	_, err = s.ListServerBundles(ctx, time.Now())
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s", Kind: registry.AuthorityJWT, AuthorityID: "k", ExpiresAt: time.Now().Add(time.Hour)})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ListAuthorityMarks(ctx, time.Now())
	assert.ErrorIs(t, err, context.Canceled)

	// Nothing changed.
	got, err := s.GetAgent(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, got)
	_, err = s.GetToken(t.Context(), tk.ID)
	require.NoError(t, err)
	_, err = s.GetToken(t.Context(), "tok2")
	require.ErrorIs(t, err, registry.ErrNotFound)
	b, err := s.GetBundle(t.Context(), tdA)
	require.NoError(t, err)
	assert.Equal(t, []byte("{}"), b.Document)
	list, err := s.ListServerBundles(t.Context(), time.Now())
	require.NoError(t, err)
	assert.Empty(t, list)
	marks, err := s.ListAuthorityMarks(t.Context(), time.Now())
	require.NoError(t, err)
	assert.Empty(t, marks)
}

func jwtAuthority(id string, notAfter time.Time) registry.ServerAuthority {
	return registry.ServerAuthority{Kind: registry.AuthorityJWT, ID: id, State: registry.AuthorityOld, NotAfter: notAfter}
}

func testServerAuthorities(t *testing.T, s NodeStore) {
	ctx := t.Context()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	cert := bytes.Repeat([]byte{0x30}, registry.MaxAuthorityCertificate)
	in := registry.ServerBundle{ServerID: "s1", Document: []byte(`{"s":1}`), ExpiresAt: now.Add(time.Hour),
		Authorities: []registry.ServerAuthority{
			{Kind: registry.AuthorityX509, ID: "0a1b", State: registry.AuthorityActive, NotAfter: now.Add(time.Hour + 1234), Certificate: cert},
			{Kind: registry.AuthorityX509, ID: "2c3d", State: registry.AuthorityOld, Tainted: true, NotAfter: now.Add(time.Minute), Certificate: []byte{1, 2}},
			{Kind: registry.AuthorityJWT, ID: "0a1b", State: registry.AuthorityPrepared, NotAfter: now.Add(2 * time.Hour), Certificate: []byte{}},
			{Kind: registry.AuthorityWIT, ID: "0a1b", State: registry.AuthorityOld, Tainted: true, NotAfter: now.Add(3 * time.Hour)},
		}}
	require.NoError(t, s.PutServerBundle(ctx, in))
	in.Authorities[0].Certificate[0] = 0xff // the store kept no reference
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s2", Document: []byte(`{"s":2}`), ExpiresAt: now.Add(time.Hour)}))

	list, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	require.Len(t, list, 2)
	got := list[0].Authorities
	require.Len(t, got, 4, "in the order given")
	assert.Equal(t, registry.AuthorityX509, got[0].Kind)
	assert.Equal(t, "0a1b", got[0].ID)
	assert.Equal(t, registry.AuthorityActive, got[0].State)
	assert.False(t, got[0].Tainted)
	assert.Equal(t, registry.StoreTime(now.Add(time.Hour+1234)), got[0].NotAfter)
	assert.Equal(t, bytes.Repeat([]byte{0x30}, registry.MaxAuthorityCertificate), got[0].Certificate)
	assert.True(t, got[1].Tainted)
	assert.Equal(t, []byte{1, 2}, got[1].Certificate)
	assert.Equal(t, registry.AuthorityJWT, got[2].Kind, "IDs are unique per kind only")
	assert.Nil(t, got[2].Certificate, "no certificate is nil")
	assert.Equal(t, registry.AuthorityWIT, got[3].Kind)
	assert.True(t, got[3].Tainted)
	assert.Equal(t, registry.StoreTime(now.Add(3*time.Hour)), got[3].NotAfter)
	assert.Nil(t, list[1].Authorities, "none is nil")

	// Copies: changing a listed description changes nothing stored.
	got[1].Certificate[0] = 9
	got[1].State = registry.AuthorityActive
	again, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2}, again[0].Authorities[1].Certificate)
	assert.Equal(t, registry.AuthorityOld, again[0].Authorities[1].State)

	// A new contribution replaces the descriptions, to none too.
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s1", Document: []byte(`{"s":1}`), ExpiresAt: now.Add(time.Hour)}))
	again, err = s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	assert.Nil(t, again[0].Authorities)
}

func testAuthorityMarks(t *testing.T, s NodeStore) {
	ctx := t.Context()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	marks, err := s.ListAuthorityMarks(ctx, now)
	require.NoError(t, err)
	assert.Empty(t, marks)

	put := func(m registry.AuthorityMark) registry.AuthorityMark {
		t.Helper()
		m.UpdatedAt = time.Unix(1, 0) // set by the store
		before := time.Now()
		got, err := s.PutAuthorityMark(ctx, m)
		require.NoError(t, err)
		inWindow(t, got.UpdatedAt, before, time.Now())
		return got
	}
	taint := put(registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "b2", ExpiresAt: now.Add(time.Hour + 123456789)})
	assert.False(t, taint.Revoked)
	assert.Equal(t, registry.StoreTime(now.Add(time.Hour+123456789)), taint.ExpiresAt)
	put(registry.AuthorityMark{ServerID: "s2", Kind: registry.AuthorityJWT, AuthorityID: "a1", Revoked: true, ExpiresAt: now.Add(time.Hour)})
	put(registry.AuthorityMark{ServerID: "s2", Kind: registry.AuthorityWIT, AuthorityID: "a1", ExpiresAt: now.Add(time.Hour)})
	put(registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "a1", ExpiresAt: now})
	put(registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "B2", ExpiresAt: now.Add(time.Microsecond)})

	list := func(at time.Time) []string {
		t.Helper()
		marks, err := s.ListAuthorityMarks(ctx, at)
		require.NoError(t, err)
		var out []string
		for _, m := range marks {
			out = append(out, fmt.Sprintf("%s/%s/%s/%t", m.Kind, m.AuthorityID, m.ServerID, m.Revoked))
		}
		return out
	}
	// Ordered by kind, then ID byte by byte; a mark that expires at now is
	// left out.
	assert.Equal(t, []string{"jwt/a1/s2/true", "wit/a1/s2/false", "x509/B2/s1/false", "x509/b2/s1/false"}, list(now))
	assert.Equal(t, []string{"jwt/a1/s2/true", "wit/a1/s2/false", "x509/B2/s1/false", "x509/a1/s1/false", "x509/b2/s1/false"}, list(now.Add(-time.Nanosecond*500)))
	assert.Equal(t, []string{"jwt/a1/s2/true", "wit/a1/s2/false", "x509/b2/s1/false"}, list(now.Add(time.Microsecond)))
	assert.Empty(t, list(now.Add(3*time.Hour)))

	// A taint becomes a revocation; a revocation never becomes a taint
	// again; the expiry follows the latest write.
	revoked := put(registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "b2", Revoked: true, ExpiresAt: now.Add(2 * time.Hour)})
	assert.True(t, revoked.Revoked)
	again := put(registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "b2", ExpiresAt: now.Add(3 * time.Hour)})
	assert.True(t, again.Revoked, "a stored revocation stays")
	stored, err := s.ListAuthorityMarks(ctx, now.Add(150*time.Minute))
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, again, stored[0], "the result is the mark as stored")
}

func testAuthorityMarkInvalid(t *testing.T, s NodeStore) {
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	valid := registry.AuthorityMark{ServerID: "s", Kind: registry.AuthorityX509, AuthorityID: "ab", ExpiresAt: exp}
	tests := []struct {
		name string
		mod  func(*registry.AuthorityMark)
	}{
		{"no server ID", func(m *registry.AuthorityMark) { m.ServerID = "" }},
		{"server ID too long", func(m *registry.AuthorityMark) { m.ServerID = strings.Repeat("s", registry.MaxServerIDLen+1) }},
		{"server ID not UTF-8", func(m *registry.AuthorityMark) { m.ServerID = "a\xffb" }},
		{"unknown kind", func(m *registry.AuthorityMark) { m.Kind = "ssh" }},
		{"no authority ID", func(m *registry.AuthorityMark) { m.AuthorityID = "" }},
		{"authority ID too long", func(m *registry.AuthorityMark) { m.AuthorityID = strings.Repeat("a", registry.MaxAuthorityIDLen+1) }},
		{"authority ID with newline", func(m *registry.AuthorityMark) { m.AuthorityID = "a\nb" }},
		{"no expiry", func(m *registry.AuthorityMark) { m.ExpiresAt = time.Time{} }},
		{"expiry out of range", func(m *registry.AuthorityMark) { m.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid
			tt.mod(&m)
			_, err := s.PutAuthorityMark(ctx, m)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "registry: authority mark ")
		})
	}
	marks, err := s.ListAuthorityMarks(ctx, time.Time{})
	require.NoError(t, err)
	assert.Empty(t, marks, "nothing invalid was stored")
}
