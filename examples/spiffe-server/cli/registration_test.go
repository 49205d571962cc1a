package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// createdID creates an entry with args and returns its ID.
func (s *server) createdID(t *testing.T, args ...string) string {
	t.Helper()
	m := entryIDLine.FindStringSubmatch(s.ok(t, append([]string{"entry", "create"}, args...)...))
	require.NotNil(t, m)
	return m[1]
}

func TestEntryCreateNode(t *testing.T) {
	s := startServer(t)
	id := s.createdID(t, "-node", "-spiffeID", "spiffe://example.org/nodes/web", "-selector", "x509pop:subject:cn:web-1")
	e, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spiffekit/server", e.ParentID.String(), "a node alias is parented by the server")
	assert.Equal(t, []attest.Selector{{Type: "x509pop", Value: "subject:cn:web-1"}}, e.Selectors)

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-node", "-parentID", "spiffe://example.org/x", "-spiffeID", "spiffe://example.org/n", "-selector", "a:b"}, "-node and -parent-id exclude each other"},
		{[]string{"-node", "-federatesWith", "other.org", "-spiffeID", "spiffe://example.org/n", "-selector", "a:b"}, "-node and -federates-with exclude each other"},
		{[]string{"-spiffeID", "spiffe://example.org/n", "-selector", "a:b"}, "-parent-id is required (or -node)"},
	} {
		r := s.run(t, "", append([]string{"entry", "create"}, tt.args...)...)
		assert.Equal(t, ExitUsage, r.code)
		assert.Contains(t, r.stderr, tt.want)
	}
	r := s.run(t, "", "entry", "update", "-entryID", id, "-node")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "-node: an entry's parent is changed with -parent-id")
}

func TestEntryUpdateClearsListsAndSkipsEmptyUpdates(t *testing.T) {
	s := startServer(t)
	id := s.createdID(t, "-parentID", "spiffe://example.org/agent", "-spiffeID", "spiffe://example.org/web",
		"-selector", "unix:uid:1", "-selector", "unix:gid:2", "-dns", "a.example.org", "-dns", "b.example.org",
		"-federatesWith", "other.org", "-federatesWith", "third.org", "-hint", "h")
	get := func() registry.Entry {
		e, err := s.store.Get(t.Context(), id)
		require.NoError(t, err)
		return e
	}
	before := get()

	// Nothing given, or only what is already there: nothing written.
	for _, args := range [][]string{
		{},
		{"-hint", "h"},
		{"-selector", "unix:uid:1", "-selector", "unix:gid:2"}, // another order
		{"-federatesWith", "spiffe://third.org", "-federatesWith", "other.org"},
		{"-output", "json"},
	} {
		out := s.ok(t, append([]string{"entry", "update", "-entryID", id}, args...)...)
		assert.NotEmpty(t, out)
		assert.Equal(t, before, get(), "%v: no write", args)
	}
	assert.Contains(t, s.ok(t, "entry", "update", "-entryID", id), "Revision:       1")

	// An empty value clears a list.
	out := s.ok(t, "entry", "update", "-entryID", id, "-dns", "")
	assert.NotContains(t, out, "DNS name")
	e := get()
	assert.Empty(t, e.DNSNames)
	assert.Equal(t, int64(2), e.Revision)
	assert.Len(t, e.FederatesWith, 2, "the other lists stay")
	s.ok(t, "entry", "update", "-entryID", id, "-federatesWith", "")
	e = get()
	assert.Empty(t, e.FederatesWith)
	assert.Equal(t, "h", e.Hint)
	s.ok(t, "entry", "update", "-entryID", id, "-hint", "")
	assert.Empty(t, get().Hint)
	// And -dns '' with names gives the names.
	s.ok(t, "entry", "update", "-entryID", id, "-dns", "", "-dns", "c.example.org")
	assert.Equal(t, []string{"c.example.org"}, get().DNSNames)
}

// conflictingStore changes an entry behind the admin API's back before each
// of the API's first n updates of it, as other administrators would.
type conflictingStore struct {
	registry.Store
	n atomic.Int64
}

func (s *conflictingStore) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if s.n.Add(-1) >= 0 {
		other, err := s.Store.Get(ctx, e.ID)
		if err != nil {
			return registry.Entry{}, err
		}
		other.DNSNames = append(other.DNSNames, "race"+time.Now().Format("150405.000000000")+".example.org")
		if _, err := s.Store.Update(ctx, other); err != nil {
			return registry.Entry{}, err
		}
	}
	return s.Store.Update(ctx, e)
}

// An update that loses a race is applied again to the entry as it is then,
// keeping the other change; one that keeps losing says so.
func TestEntryUpdateRetriesConflicts(t *testing.T) {
	var racing *conflictingStore
	s := startServerWith(t, func(c *adminserver.Config) {
		racing = &conflictingStore{Store: c.Entries}
		c.Entries = racing
	})
	id := s.createdID(t, "-parentID", "spiffe://example.org/agent", "-spiffeID", "spiffe://example.org/web", "-selector", "unix:uid:1")

	racing.n.Store(2)
	out := s.ok(t, "entry", "update", "-entryID", id, "-hint", "mine")
	assert.Contains(t, out, "Hint:           mine")
	e, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "mine", e.Hint)
	assert.Len(t, e.DNSNames, 2, "the changes made meanwhile stay")
	assert.Equal(t, int64(4), e.Revision)

	racing.n.Store(maxUpdateTries)
	r := s.run(t, "", "entry", "update", "-entryID", id, "-hint", "again")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "entry "+id+" changed 5 times while it was being updated; try again")
	assert.Contains(t, r.stderr, "is at revision")
}

func TestCounts(t *testing.T) {
	s := startServer(t)
	assert.Equal(t, "0 registration entries\n", s.ok(t, "entry", "count"))
	s.createdID(t, "-parentID", "spiffe://example.org/agent", "-spiffeID", "spiffe://example.org/a", "-selector", "unix:uid:1")
	assert.Equal(t, "1 registration entry\n", s.ok(t, "entry", "count"))
	s.createdID(t, "-parentID", "spiffe://example.org/agent", "-spiffeID", "spiffe://example.org/b", "-selector", "unix:uid:2")
	assert.Equal(t, "2 registration entries\n", s.ok(t, "entry", "count"))
	assert.Equal(t, "1 registration entry\n", s.ok(t, "entry", "count", "-selector", "unix:uid:2"))
	assert.Equal(t, `{"count":0}`+"\n", s.ok(t, "entry", "count", "-spiffeID", "spiffe://example.org/c", "-output", "json"))

	assert.Equal(t, "0 attested agents\n", s.ok(t, "agent", "count"))
	n1 := spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/one")
	_, err := s.store.PutAgent(t.Context(), registry.Agent{ID: n1, AttestorType: "join_token", SerialNumber: "1",
		Selectors: []attest.Selector{{Type: "join_token", Value: "id:one"}}, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.Equal(t, "1 attested agent\n", s.ok(t, "agent", "count"))

	show := s.ok(t, "agent", "show", "-spiffeID", n1.String())
	assert.True(t, strings.HasPrefix(show, "SPIFFE ID:      "+n1.String()+"\n"), show)
	assert.Contains(t, show, "Selector:       join_token:id:one")
	r := s.run(t, "", "agent", "show", "-spiffeID", "spiffe://example.org/spiffekit/agent/join_token/two")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, `spiffe-server agent show: admin: registry: agent "spiffe://example.org/spiffekit/agent/join_token/two" not found`+"\n", r.stderr,
		"the wording fits the object")
	r = s.run(t, "", "agent", "show")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, "-spiffe-id is required")
}

func TestBundleSetFormats(t *testing.T) {
	s := startServer(t)
	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	pem := pemutil.EncodeCertificates(other.X509Bundle().X509Authorities())
	stored := func() *spiffebundle.Bundle {
		b, err := s.store.GetBundle(t.Context(), other.TrustDomain())
		require.NoError(t, err)
		sb, err := spiffebundle.Parse(other.TrustDomain(), b.Document)
		require.NoError(t, err)
		return sb
	}
	for _, args := range [][]string{
		{"bundle", "set", "-id", "other.org", "-format", "pem"},
		{"bundle", "set", "-id", "spiffe://other.org"}, // PEM recognised
	} {
		r := s.run(t, string(pem), args...)
		require.Equal(t, ExitOK, r.code, r.stderr)
		assert.Equal(t, other.X509Bundle().X509Authorities(), stored().X509Authorities())
	}
	doc, err := spiffebundle.FromX509Bundle(other.X509Bundle()).Marshal()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(file, doc, 0o600))
	s.ok(t, "bundle", "set", "-id", "other.org", "-format", "spiffe", "-path", file)
	assert.Equal(t, other.X509Bundle().X509Authorities(), stored().X509Authorities())

	for _, tt := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{string(pem), []string{"-format", "spiffe"}, ExitFailure, "invalid"},
		{string(doc), []string{"-format", "pem"}, ExitFailure, "-format pem: x509bundle: cannot parse certificate: no CERTIFICATE PEM blocks found"},
		{"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", nil, ExitFailure, "-format pem: "},
		{string(pem), []string{"-format", "der"}, ExitUsage, `-format must be pem or spiffe, not "der"`},
	} {
		r := s.run(t, tt.stdin, append([]string{"bundle", "set", "-id", "other.org"}, tt.args...)...)
		assert.Equal(t, tt.code, r.code, r.stderr)
		assert.Contains(t, r.stderr, tt.want)
	}
}

func TestBundleDeleteModes(t *testing.T) {
	s := startServer(t)
	doc, err := spiffebundle.FromX509Bundle(testca.New(t, spiffeid.RequireTrustDomainFromString("other.org")).X509Bundle()).Marshal()
	require.NoError(t, err)
	set := func() {
		t.Helper()
		r := s.run(t, string(doc), "bundle", "set", "-id", "other.org")
		require.Equal(t, ExitOK, r.code, r.stderr)
	}
	set()
	id := s.createdID(t, "-parentID", "spiffe://example.org/agent", "-spiffeID", "spiffe://example.org/a", "-selector", "unix:uid:1",
		"-federatesWith", "other.org")

	r := s.run(t, "", "bundle", "delete", "-id", "other.org")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, `1 entry federate with "other.org" (such as `+id+`)`)
	assert.Contains(t, r.stderr, "mode delete")

	assert.Equal(t, "Bundle of other.org deleted; 1 entry no longer federate with it\n",
		s.ok(t, "bundle", "delete", "-id", "other.org", "-mode", "dissociate"))
	e, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Empty(t, e.FederatesWith)

	set()
	s.ok(t, "entry", "update", "-entryID", id, "-federatesWith", "other.org")
	assert.Equal(t, `{"trust_domain":"other.org","mode":"delete","entries":1}`+"\n",
		s.ok(t, "bundle", "delete", "-id", "other.org", "-mode", "delete", "-output", "json"))
	_, err = s.store.Get(t.Context(), id)
	require.ErrorIs(t, err, registry.ErrNotFound)

	set()
	assert.Equal(t, "Bundle of other.org deleted\n", s.ok(t, "bundle", "delete", "-id", "other.org"))
	r = s.run(t, "", "bundle", "delete", "-id", "other.org", "-mode", "cascade")
	assert.Equal(t, ExitUsage, r.code)
	assert.Contains(t, r.stderr, `-mode must be restrict, delete or dissociate, not "cascade"`)
}

// TestEntryDownstream checks -downstream on create, update and show, and
// "downstream" in an entry file.
func TestEntryDownstream(t *testing.T) {
	s := startServer(t)
	id := s.createdID(t, "-downstream", "-spiffeID", "spiffe://example.org/regional", "-parentID", "spiffe://example.org/agent", "-selector", "unix:uid:1")
	e, err := s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.True(t, e.Downstream)
	assert.Contains(t, s.ok(t, "entry", "show", "-entryID", id), "Downstream:     true")
	assert.Contains(t, s.ok(t, "entry", "show", "-entryID", id, "-output", "json"), `"downstream":true`)

	s.ok(t, "entry", "update", "-entryID", id, "-downstream=false")
	e, err = s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.False(t, e.Downstream, "-downstream=false clears it")
	assert.NotContains(t, s.ok(t, "entry", "show", "-entryID", id), "Downstream")
	s.ok(t, "entry", "update", "-entryID", id, "-hint", "h")
	e, err = s.store.Get(t.Context(), id)
	require.NoError(t, err)
	assert.False(t, e.Downstream, "an update without -downstream keeps it")

	r := s.run(t, `{"entries": [{"spiffe_id": "spiffe://example.org/edge", "parent_id": "spiffe://example.org/agent", "selectors": ["unix:uid:2"], "downstream": true}]}`,
		"entry", "create", "-data", "-")
	require.Equal(t, ExitOK, r.code, r.stderr)
	all, _, err := s.store.List(t.Context(), registry.Filter{BySPIFFEID: spiffeid.RequireFromString("spiffe://example.org/edge")}, registry.Page{})
	require.NoError(t, err)
	require.Len(t, all, 1)
	assert.True(t, all[0].Downstream)
}
