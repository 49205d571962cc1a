package nodeserver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// second starts another server on e's CA and stores, as a replica of the
// issuing server would be, whose cache of agent records goes stale: it
// reads them at start only (the agent store does not tell of writes, and
// the poll is slow).
func (e *env) second(t *testing.T) *env { return e.replica(t, nil) }

// replica is second with the configuration edited by mod, if not nil.
func (e *env) replica(t *testing.T, mod func(*nodeserver.Config)) *env {
	t.Helper()
	cfg := nodeserver.Config{
		Authority:    e.ca,
		Registry:     e.store,
		Agents:       quietAgents{e.store},
		Attestors:    []attest.NodeAttestor{echoAttestor{}},
		PollInterval: time.Hour,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := nodeserver.New(t.Context(), cfg)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cancel := serve(t, srv, lis)
	return &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String(), cancel: cancel}
}

// quietAgents is an agent store that does not tell of its writes.
type quietAgents struct{ registry.AgentStore }

// Property: an agent that renewed its SVID through one server is accepted
// at once by another server sharing the agent records, whose cache still
// holds the previous serial; a superseded SVID is still refused there.
func TestRenewedAgentIsAcceptedByAnotherServer(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	s2 := e.second(t) // caches the record with the first serial
	old := &agent{key: a.key, svid: a.svid}

	_, err := a.client.RenewAgent(t.Context(), newKey(t))
	require.NoError(t, err)
	key := newKey(t)
	// Renewed again: the first SVID is now superseded twice over.
	renewed, err := a.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)

	cur := &agent{key: key, svid: renewed}
	c, err := nodeapi.Dial(s2.clientConfig(), cur)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.ErrorContains(t, err, "not authorized", "authenticated, then refused for the entry: %v", err)

	c2, err := nodeapi.Dial(s2.clientConfig(), old)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err))
	assert.ErrorContains(t, err, "no longer current")
}

// relabelAttestor admits the node its payload names ("<name> <label>"),
// with the one selector relabel:label:<label>, and lets it attest again: a
// node whose selectors change from one attestation to the next, as an
// x509pop node's do when its certificate's CA chain changes.
type relabelAttestor struct{}

func (relabelAttestor) Type() string { return "relabel" }

func (relabelAttestor) Attest(_ context.Context, td spiffeid.TrustDomain, payload []byte, _ attest.Challenger) (attest.NodeResult, error) {
	name, label, _ := strings.Cut(string(payload), " ")
	id, err := spiffeid.FromSegments(td, "spiffekit", "agent", "relabel", name)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("%w: %w", attest.ErrNodeRejected, err)
	}
	return attest.NodeResult{
		AgentID:     id,
		Selectors:   attest.NewSelectors(attest.Selector{Type: "relabel", Value: "label:" + label}),
		CanReattest: true,
	}, nil
}

type relabelClient struct{ payload string }

func (relabelClient) Type() string                              { return "relabel" }
func (c relabelClient) Payload(context.Context) ([]byte, error) { return []byte(c.payload), nil }
func (relabelClient) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("no challenge")
}

// Property: what an agent may obtain follows the selectors of its latest
// attestation at once: an agent ID attested again with other selectors
// loses the entries that only the old selectors gave it, even before the
// next refresh of agent records.
func TestReattestationWithOtherSelectorsUpdatesAuthorization(t *testing.T) {
	e := newEnv(t, func(c *nodeserver.Config) {
		c.Attestors = append(c.Attestors, relabelAttestor{})
		c.Agents = quietAgents{c.Agents}
		c.PollInterval = time.Hour
	})
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/relabel/node")
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/labelled-one", attest.Selector{Type: "relabel", Value: "label:one"})
	x := e.entry(t, alias.SPIFFEID, "/x")

	attestWith := func(label string) *agent {
		key := newKey(t)
		svid, err := nodeapi.Attest(t.Context(), e.clientConfig(), relabelClient{"node " + label}, key)
		require.NoError(t, err)
		a := &agent{key: key, svid: svid}
		a.client, err = nodeapi.Dial(e.clientConfig(), a)
		require.NoError(t, err)
		t.Cleanup(func() { a.client.Close() })
		return a
	}
	a1 := attestWith("one")
	require.Equal(t, agentID, a1.svid.ID)
	_, err := a1.client.SignJWTSVID(t.Context(), x.ID, []string{"db"})
	require.NoError(t, err)

	a2 := attestWith("two")
	require.Equal(t, agentID, a2.svid.ID)
	_, err = a2.client.SignJWTSVID(t.Context(), x.ID, []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
}

// bannedBehindCache attests node1, then bans it in the store as another
// server would, behind the back of this server's cache (its agent store
// tells of no write, and it polls once an hour).
func bannedBehindCache(t *testing.T) (*env, *agent) {
	t.Helper()
	e := newEnv(t, func(c *nodeserver.Config) {
		c.Agents = quietAgents{c.Agents}
		c.PollInterval = time.Hour
	})
	a := e.attest(t, "node1")
	rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	rec.Banned = true
	_, err = e.store.PutAgent(t.Context(), rec)
	require.NoError(t, err)
	return e, a
}

// Property: a ban written by another server, which this server's cache
// has not seen, is neither bypassed nor written over by attesting again.
func TestReattestationDoesNotBypassABan(t *testing.T) {
	e, a := bannedBehindCache(t)

	_, err := nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	assert.True(t, rec.Banned, "the ban is still recorded")
}

// lagging starts another server on e's CA and stores that serves agents
// but does not run Run: it indexes the store once, now, and reads none of
// its later changes by itself, as a server does between two reads of the
// change feed when another server wrote.
func (e *env) lagging(t *testing.T) *env {
	t.Helper()
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: e.ca,
		Registry:  e.store,
		Agents:    e.store,
		Attestors: []attest.NodeAttestor{echoAttestor{}},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-served)
		require.NoError(t, srv.Close())
	})
	return &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String(), cancel: cancel}
}

// firstUpdate opens an entry stream on c, telling the server what the agent
// holds, and returns the first update.
func firstUpdate(t *testing.T, c *nodeapi.Client, known map[string]int64) nodeapi.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errFirst := errors.New("first update received")
	var first nodeapi.Update
	err := c.Sync(ctx, known, func(u nodeapi.Update) error {
		first = u
		return errFirst
	})
	require.ErrorIs(t, err, errFirst)
	return first
}

// Property: an agent that fails over to a server which has not yet read
// the shared store's latest writes (servers read each other's writes from
// the change feed, at their next poll or notification) loses none of the
// entries it received from the other server: the server catches up with
// the store before it tells the agent to delete an entry it holds, or
// refuses to sign for one. What the store no longer holds is still
// deleted, and what the agent is not authorized for still refused.
func TestServerBehindTheStoreCatchesUpBeforeDenyingAnEntry(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	gone := e.entry(t, a.svid.ID, "/gone")
	_, err := e.store.Delete(t.Context(), gone.ID, gone.Revision)
	require.NoError(t, err)
	s2 := e.lagging(t) // knows the store as it is now
	web := e.entry(t, a.svid.ID, "/web")
	other := e.entry(t, spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node2"), "/other")
	c2, err := nodeapi.Dial(s2.clientConfig(), a)
	require.NoError(t, err)
	defer c2.Close()

	// The agent holds /web from the first server, and /gone from before it
	// was deleted.
	u := firstUpdate(t, c2, map[string]int64{web.ID: web.Revision, gone.ID: gone.Revision})
	assert.Equal(t, []string{gone.ID}, u.Deleted, "only what the store no longer holds is deleted")
	assert.Empty(t, u.Upserts, "the agent holds /web at its current revision")

	// Entries written through the first server since: signed by the second.
	db := e.entry(t, a.svid.ID, "/db")
	res, err := c2.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{
		{EntryID: db.ID, CSR: csrFor(t, db.SPIFFEID)},
		{EntryID: other.ID, CSR: csrFor(t, other.SPIFFEID)},
	})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.NoError(t, res[0].Err)
	assert.Equal(t, db.SPIFFEID.String(), res[0].Certificates[0].URIs[0].String())
	assert.ErrorContains(t, res[1].Err, "not authorized", "another agent's entry")

	cache := e.entry(t, a.svid.ID, "/cache")
	_, err = c2.SignJWTSVID(t.Context(), cache.ID, []string{"db"})
	require.NoError(t, err)
	_, err = c2.SignJWTSVID(t.Context(), other.ID, []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "another agent's entry: %v", err)
}

// brokenFeed is a registry whose change feed fails once broken is set.
type brokenFeed struct {
	index.Source
	broken atomic.Bool
}

func (f *brokenFeed) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	if f.broken.Load() {
		return nil, errors.New("the database is away")
	}
	return f.Source.Changes(ctx, after, limit)
}

// Property: a server that cannot read the registry's changes does not
// decide on an entry it has not read: the agent holding or asking for it
// is told to try again later (Unavailable), never that the entry is
// deleted or not authorized.
func TestServerThatCannotCatchUpAnswersUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	feed := &brokenFeed{Source: e.store}
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: e.ca,
		Registry:  feed,
		Agents:    e.store,
		Attestors: []attest.NodeAttestor{echoAttestor{}},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serve(t, srv, lis)
	s2 := &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String()}
	feed.broken.Store(true)
	web := e.entry(t, a.svid.ID, "/web") // read by the first server only
	c2, err := nodeapi.Dial(s2.clientConfig(), a)
	require.NoError(t, err)
	defer c2.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err = c2.Sync(ctx, map[string]int64{web.ID: web.Revision}, func(u nodeapi.Update) error {
		t.Errorf("the stream sent an update: %+v", u)
		return nil
	})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	_, err = c2.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: web.ID, CSR: csrFor(t, web.SPIFFEID)}})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	_, err = c2.SignJWTSVID(t.Context(), web.ID, []string{"db"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// Once the registry answers again, the same calls succeed.
	feed.broken.Store(false)
	u := firstUpdate(t, c2, map[string]int64{web.ID: web.Revision})
	assert.Empty(t, u.Deleted)
	_, err = c2.SignJWTSVID(t.Context(), web.ID, []string{"db"})
	assert.NoError(t, err)
}

func csrFor(t *testing.T, id spiffeid.ID) []byte {
	t.Helper()
	csr, err := nodeapi.NewCSR(newKey(t), id)
	require.NoError(t, err)
	return csr
}

// Property: an SVID that is no longer the agent's current one, nor the one
// before it, is refused by a server whose stale cache still holds it as
// current (with a previous one, which sends the server to the store): what
// the store says after that fresh read decides, not the cache.
func TestSupersededSVIDIsRefusedAfterAFreshRead(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	key := newKey(t)
	renewed, err := a.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)
	s2 := e.second(t) // caches the renewed serial as current, the first as previous

	// The node attests again through the first server: the renewed SVID
	// is superseded, with no grace.
	_, err = nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
	require.NoError(t, err)

	stale := &agent{key: key, svid: renewed}
	c, err := nodeapi.Dial(s2.clientConfig(), stale)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.RenewAgent(t.Context(), newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "no longer current")
	_, err = c.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "no longer current")

	// The renewed SVID still holds the grace of the previous serial while
	// the agent has not used the next: renewed through the first server, it
	// is accepted by the second.
	a2 := e.attest(t, "node2")
	key2 := newKey(t)
	renewed2, err := a2.client.RenewAgent(t.Context(), key2)
	require.NoError(t, err)
	s3 := e.second(t)
	next := &agent{key: key2, svid: renewed2}
	c2, err := nodeapi.Dial(e.clientConfig(), next)
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.RenewAgent(t.Context(), newKey(t)) // renewed2 is now the previous serial
	require.NoError(t, err)
	c3, err := nodeapi.Dial(s3.clientConfig(), next)
	require.NoError(t, err)
	defer c3.Close()
	_, err = c3.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.ErrorContains(t, err, "not authorized", "authenticated, then refused for the entry: %v", err)
}

// banAfterRead is an agent store on which another server bans an agent
// right after this server read its record, once armed: the interleaving in
// which a read-then-write of the record would write over the ban.
type banAfterRead struct {
	registry.AgentStore
	armed atomic.Pointer[spiffeid.ID]
}

func (b *banAfterRead) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	a, err := b.AgentStore.GetAgent(ctx, id)
	if armed := b.armed.Load(); err == nil && armed != nil && *armed == id && b.armed.CompareAndSwap(armed, nil) {
		banned := a
		banned.Banned = true
		if _, err := b.AgentStore.PutAgent(ctx, banned); err != nil {
			return registry.Agent{}, err
		}
	}
	return a, err
}

// Property: a ban that another server writes between this server's read of
// an agent's record and its write of the record (attesting again, renewing)
// is not written over: the write keeps the ban, and the call is refused.
func TestBanBetweenReadAndWriteIsKept(t *testing.T) {
	e := newEnv(t, nil)
	agents := &banAfterRead{AgentStore: e.store}
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: e.ca,
		Registry:  e.store,
		Agents:    quietAgents{agents},
		Attestors: []attest.NodeAttestor{echoAttestor{}},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serve(t, srv, lis)
	b := &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String()}

	for _, tc := range []struct {
		name string
		call func(t *testing.T, a *agent) error
	}{
		{"attesting again", func(t *testing.T, a *agent) error {
			_, err := nodeapi.Attest(t.Context(), b.clientConfig(), echoClient{a.svid.ID.Path()[len("/spiffekit/agent/echo/"):]}, newKey(t))
			return err
		}},
		{"renewing", func(t *testing.T, a *agent) error {
			c, err := nodeapi.Dial(b.clientConfig(), a)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.RenewAgent(t.Context(), newKey(t))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.attest(t, "node-"+strings.ReplaceAll(tc.name, " ", "-"))
			id := a.svid.ID
			// The second server caches the record (the call is
			// authenticated, then refused for the entry), so that the
			// read armed below is the one before the write.
			c, err := nodeapi.Dial(b.clientConfig(), a)
			require.NoError(t, err)
			_, err = c.SignJWTSVID(t.Context(), "x", []string{"db"})
			require.ErrorContains(t, err, "not authorized")
			c.Close()
			agents.armed.Store(&id)
			err = tc.call(t, a)
			require.Nil(t, agents.armed.Load(), "the ban was written between the read and the write")
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
			assert.ErrorContains(t, err, "banned")
			rec, err := e.store.GetAgent(t.Context(), id)
			require.NoError(t, err)
			assert.True(t, rec.Banned, "the ban is still recorded")
		})
	}
}

// evictAfterRead is an agent store on which another server evicts an agent
// right after this server read its record, once armed: the interleaving in
// which a read-then-write of the record would bring the agent back.
type evictAfterRead struct {
	registry.AgentStore
	armed atomic.Pointer[spiffeid.ID]
}

func (e *evictAfterRead) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	a, err := e.AgentStore.GetAgent(ctx, id)
	if armed := e.armed.Load(); err == nil && armed != nil && *armed == id && e.armed.CompareAndSwap(armed, nil) {
		if err := e.AgentStore.DeleteAgent(ctx, id); err != nil {
			return registry.Agent{}, err
		}
	}
	return a, err
}

// Property: an eviction that another server makes between this server's
// read of an agent's record and its write of the record (renewing the
// agent's SVID, retiring the previous one at the first use of the new) is
// not undone: the write finds no record and creates none, and the agent is
// refused as evicted.
func TestEvictionBetweenReadAndWriteIsKept(t *testing.T) {
	e := newEnv(t, nil)
	agents := &evictAfterRead{AgentStore: e.store}
	srv, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: e.ca,
		Registry:  e.store,
		Agents:    quietAgents{agents},
		Attestors: []attest.NodeAttestor{echoAttestor{}},
	})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	serve(t, srv, lis)
	b := &env{ca: e.ca, auth: e.ca, store: e.store, srv: srv, addr: lis.Addr().String()}

	// cached makes the second server cache a's record, with a call of
	// client that it authenticates then refuses for the entry, so that the
	// read armed next is the one before the write.
	cached := func(t *testing.T, c *nodeapi.Client) {
		_, err := c.SignJWTSVID(t.Context(), "x", []string{"db"})
		require.ErrorContains(t, err, "not authorized")
	}
	for _, tc := range []struct {
		name string
		// call returns the call's error; arm is to be called right before
		// the call that reads, then writes, the record.
		call func(t *testing.T, a *agent, arm func()) error
	}{
		{"renewing", func(t *testing.T, a *agent, arm func()) error {
			c, err := nodeapi.Dial(b.clientConfig(), a)
			require.NoError(t, err)
			defer c.Close()
			cached(t, c)
			arm()
			_, err = c.RenewAgent(t.Context(), newKey(t))
			return err
		}},
		{"first use of the renewed SVID", func(t *testing.T, a *agent, arm func()) error {
			c, err := nodeapi.Dial(b.clientConfig(), a)
			require.NoError(t, err)
			defer c.Close()
			key := newKey(t)
			renewed, err := c.RenewAgent(t.Context(), key) // cached, with the previous serial
			require.NoError(t, err)
			c2, err := nodeapi.Dial(b.clientConfig(), &agent{key: key, svid: renewed})
			require.NoError(t, err)
			defer c2.Close()
			arm()
			_, err = c2.SignJWTSVID(t.Context(), "x", []string{"db"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.attest(t, "node-"+strings.ReplaceAll(tc.name, " ", "-"))
			id := a.svid.ID
			err := tc.call(t, a, func() { agents.armed.Store(&id) })
			require.Nil(t, agents.armed.Load(), "the eviction was made between the read and the write")
			assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
			assert.ErrorContains(t, err, "evicted")
			_, err = e.store.GetAgent(t.Context(), id)
			require.ErrorIs(t, err, registry.ErrNotFound, "the record stays deleted")
			_, cached := b.srv.CachedAgent(id)
			assert.False(t, cached, "the server forgot the agent")
		})
	}
}
