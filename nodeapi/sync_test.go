package nodeapi_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fedSource is a FederationSource whose bundles a test sets.
type fedSource struct {
	broadcast.Hub // Subscribe
	mu            sync.Mutex
	bundles       []*spiffebundle.Bundle
}

func (f *fedSource) FederatedBundles() []*spiffebundle.Bundle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bundles
}

func (f *fedSource) set(b ...*spiffebundle.Bundle) {
	f.mu.Lock()
	f.bundles = b
	f.mu.Unlock()
	f.Notify()
}

func caBundle(t testing.TB, name string) *spiffebundle.Bundle {
	c := testca.New(t, spiffeid.RequireTrustDomainFromString(name))
	return spiffebundle.FromX509Authorities(c.TrustDomain(), []*x509.Certificate{c.Root()})
}

func names(bs []*spiffebundle.Bundle) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.TrustDomain().Name())
	}
	return out
}

// Federation rule: the server hands agents the federated bundles as a
// complete set when it changes, and never a bundle of its own trust
// domain through federation (which would let a foreign source replace the
// trust domain's own roots).
func TestSyncDeliversFederatedBundles(t *testing.T) {
	fed := &fedSource{}
	partner := caBundle(t, "partner.example")
	impostor := caBundle(t, td.Name()) // claims to be our own trust domain
	fed.set(partner, impostor, nil)
	e := newEnv(t, func(c *nodeapi.ServerConfig) { c.Federation = fed })
	a := e.attest(t, "node1")
	updates, _ := syncUpdates(t, a)

	u := next(t, updates)
	require.True(t, u.FederatedSet)
	assert.Equal(t, []string{"partner.example"}, names(u.FederatedBundles))
	assert.True(t, u.FederatedBundles[0].Equal(partner))
	require.NotNil(t, u.Bundle)
	assert.True(t, u.Bundle.Equal(e.ca.Bundle()), "the own bundle comes from the CA")

	second := caBundle(t, "second.example")
	fed.set(partner, second)
	u = next(t, updates)
	require.True(t, u.FederatedSet)
	assert.ElementsMatch(t, []string{"partner.example", "second.example"}, names(u.FederatedBundles))
	assert.Nil(t, u.Bundle)

	// Emptied: an empty set, told apart from "no change".
	fed.set()
	u = next(t, updates)
	assert.True(t, u.FederatedSet)
	assert.Empty(t, u.FederatedBundles)

	// The client refuses its own trust domain through federation, even if
	// a server sends it.
	doc, err := e.ca.Bundle().Marshal()
	require.NoError(t, err)
	_, err = nodeapi.ParseUpdate(td, &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{td.Name(): doc}})
	assert.ErrorContains(t, err, "invalid federated trust domain")
}

// Property: after a CA is tainted, every agent is told which CA at once,
// with the new bundle and active CA, so that it re-mints what that CA
// signed.
func TestSyncPropagatesTaintedCAs(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates, _ := syncUpdates(t, a)
	u := next(t, updates)
	assert.Empty(t, u.TaintedX509CAs)
	oldCA := u.ActiveX509CA
	require.NotNil(t, oldCA)

	ctx := t.Context()
	old := e.ca.X509CAs()
	_, err := e.ca.PrepareX509CA(ctx)
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateX509CA(ctx))
	var oldID string
	for _, info := range old {
		if info.Certificate.Equal(oldCA) {
			oldID = info.ID
		}
	}
	require.NotEmpty(t, oldID)
	require.NoError(t, e.ca.TaintX509CA(ctx, oldID))

	require.Eventually(t, func() bool {
		select {
		case u = <-updates:
		case <-time.After(5 * time.Second):
			return false
		}
		return len(u.TaintedX509CAs) == 1
	}, 20*time.Second, time.Millisecond)
	assert.True(t, u.TaintedX509CAs[0].Equal(oldCA))
	require.NotNil(t, u.ActiveX509CA)
	assert.False(t, u.ActiveX509CA.Equal(oldCA))

	// The renewed agent SVID comes from the new CA and verifies with the
	// bundle the agent was sent.
	cfg := e.clientConfig()
	cfg.Bundle = liveBundle{e.ca}
	c, err := nodeapi.Dial(cfg, a)
	require.NoError(t, err)
	defer c.Close()
	renewed, err := c.RenewAgent(ctx, newKey(t))
	require.NoError(t, err)
	require.NoError(t, renewed.Certificates[0].CheckSignatureFrom(u.ActiveX509CA))
}

// Node alias rule: an entry whose parent is the server ID is an alias for
// every agent whose selectors include its own; the entries under the
// alias reach those agents and no others, and may be signed by them.
func TestNodeAliasScopesEntries(t *testing.T) {
	e := newEnv(t, nil)
	n1 := e.attest(t, "node1")
	n2 := e.attest(t, "node2")
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	alias := e.entry(t, serverID, "/cluster/blue", attest.Selector{Type: "echo", Value: "name:node1"})
	viaAlias := e.entry(t, alias.SPIFFEID, "/blue-web")

	u1, _ := syncUpdates(t, n1)
	u := next(t, u1)
	require.Len(t, u.Upserts, 1)
	assert.Equal(t, viaAlias.ID, u.Upserts[0].ID)
	u2, _ := syncUpdates(t, n2)
	assert.Empty(t, next(t, u2).Upserts, "node2 lacks the alias's selector")

	key := newKey(t)
	csr, err := nodeapi.NewCSR(key, viaAlias.SPIFFEID)
	require.NoError(t, err)
	res, err := n1.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: viaAlias.ID, CSR: csr}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	res, err = n2.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: viaAlias.ID, CSR: csr}})
	require.NoError(t, err)
	assert.ErrorContains(t, res[0].Err, "not authorized")
}

func validPBEntry() *nodepb.Entry {
	return &nodepb.Entry{
		Id:        "0123456789abcdef0123456789abcdef",
		SpiffeId:  "spiffe://example.org/web",
		ParentId:  "spiffe://example.org/spiffekit/agent/x",
		Selectors: []*nodepb.Selector{{Type: "unix", Value: "uid:1000"}},
		Revision:  1,
	}
}

// An entry from a server of an earlier version, which still sends the
// admin and downstream flags (fields 9 and 10, now reserved), is taken
// as the same entry without them.
func TestEntryFromOlderServer(t *testing.T) {
	wire, err := proto.Marshal(validPBEntry())
	require.NoError(t, err)
	wire = protowire.AppendTag(wire, 9, protowire.VarintType)
	wire = protowire.AppendVarint(wire, 1)
	wire = protowire.AppendTag(wire, 10, protowire.VarintType)
	wire = protowire.AppendVarint(wire, 1)
	var p nodepb.Entry
	require.NoError(t, proto.Unmarshal(wire, &p))
	got, err := nodeapi.EntryFromPB(&p)
	require.NoError(t, err)
	want, err := nodeapi.EntryFromPB(validPBEntry())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// Property: the client takes from the wire only entries that satisfy the
// registry's own rules and limits.
func TestEntryFromPBRejectsMalformed(t *testing.T) {
	e, err := nodeapi.EntryFromPB(validPBEntry())
	require.NoError(t, err, "the base row must be valid")
	require.Equal(t, "/web", e.SPIFFEID.Path())
	// Each row fails for its own cause: the message, after "nodeapi: entry
	// <ID>: " where the ID is valid, and registry.ErrInvalid where the
	// registry's own validation refuses it.
	const prefix = "nodeapi: entry 0123456789abcdef0123456789abcdef: "
	for _, tt := range []struct {
		name    string
		mod     func(*nodepb.Entry)
		want    string
		invalid bool
	}{
		{"bad ID", func(p *nodepb.Entry) { p.Id = "../x" }, `nodeapi: invalid entry ID "../x"`, false},
		{"bad SPIFFE ID", func(p *nodepb.Entry) { p.SpiffeId = "https://example.org/web" }, prefix + "spiffeid: scheme is missing or invalid", false},
		{"bad parent", func(p *nodepb.Entry) { p.ParentId = "" }, prefix + "parent: spiffeid: cannot be empty", false},
		{"negative TTL", func(p *nodepb.Entry) { p.X509SvidTtlSeconds = -1 }, prefix + "TTL out of range", false},
		{"huge TTL", func(p *nodepb.Entry) { p.JwtSvidTtlSeconds = 1 << 40 }, prefix + "TTL out of range", false},
		{"too many selectors", func(p *nodepb.Entry) {
			for i := range registry.MaxSelectors + 1 {
				p.Selectors = append(p.Selectors, &nodepb.Selector{Type: "unix", Value: "uid:" + strings.Repeat("1", i+1)})
			}
		}, prefix + "too many selectors", false},
		{"nil selector", func(p *nodepb.Entry) { p.Selectors = append(p.Selectors, nil) }, prefix + "empty selector", false},
		{"no selector", func(p *nodepb.Entry) { p.Selectors = nil }, prefix + "registry: entry has no selectors", true},
		{"too many federates", func(p *nodepb.Entry) {
			p.FederatesWith = make([]string, registry.MaxFederatesWith+1)
		}, prefix + "too many federated trust domains", false},
		{"bad federated trust domain", func(p *nodepb.Entry) { p.FederatesWith = []string{"Not A TD"} },
			prefix + "federates with: spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores", false},
		{"zero revision", func(p *nodepb.Entry) { p.Revision = 0 }, prefix + "revision must be positive", false},
		{"hint too long", func(p *nodepb.Entry) { p.Hint = strings.Repeat("h", registry.MaxHintLen+1) },
			prefix + fmt.Sprintf("registry: entry hint is longer than %d bytes", registry.MaxHintLen), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := validPBEntry()
			tt.mod(p)
			_, err := nodeapi.EntryFromPB(p)
			require.EqualError(t, err, tt.want)
			assert.Equal(t, tt.invalid, errors.Is(err, registry.ErrInvalid), "%v", err)
		})
	}
	_, err = nodeapi.EntryFromPB(nil)
	assert.EqualError(t, err, "nodeapi: empty entry")
}

func TestParseUpdateRejectsMalformed(t *testing.T) {
	bad := validPBEntry()
	bad.Revision = 0
	for _, tt := range []struct {
		name string
		resp *nodepb.SyncResponse
		want string
	}{
		{"bad upsert", &nodepb.SyncResponse{Upserts: []*nodepb.Entry{bad}}, "revision"},
		{"bad deleted ID", &nodepb.SyncResponse{DeletedIds: []string{"x/y"}}, "deleted entry ID"},
		{"bad bundle", &nodepb.SyncResponse{Bundle: []byte("{")}, "bundle from the server"},
		{"bad federated name", &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{"NO": nil}}, "federated trust domain"},
		{"bad federated bundle", &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{"partner.example": []byte("[]")}}, "bundle of partner.example"},
		{"bad tainted CA", &nodepb.SyncResponse{TaintedX509Cas: [][]byte{{1}}}, "tainted CA"},
		{"bad active CA", &nodepb.SyncResponse{ActiveX509Ca: []byte{1}}, "active CA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nodeapi.ParseUpdate(td, tt.resp)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	u, err := nodeapi.ParseUpdate(td, &nodepb.SyncResponse{Upserts: []*nodepb.Entry{validPBEntry()}, DeletedIds: []string{"fedcba9876543210fedcba9876543210"}})
	require.NoError(t, err)
	assert.Len(t, u.Upserts, 1)
	assert.Len(t, u.Deleted, 1)
	assert.False(t, u.FederatedSet)
}
