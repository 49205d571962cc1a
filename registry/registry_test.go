package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestParseSelector(t *testing.T) {
	tests := []struct {
		in      string
		want    registry.Selector
		wantErr string
	}{
		{in: "unix:uid:1000", want: registry.Selector{Type: "unix", Value: "uid:1000"}},
		{in: "k8s:ns:prod", want: registry.Selector{Type: "k8s", Value: "ns:prod"}},
		{in: "nocolon", wantErr: "missing ':'"},
		{in: ":value", wantErr: "selector type is empty"},
		{in: "type:", wantErr: "empty value"},
		{in: "ty\x01pe:v", wantErr: "control character"},
		{in: "type:v\n", wantErr: "control character"},
		{in: "unix:path:/bin/\xff", wantErr: "not valid UTF-8"}, // stores keep text: it would come back changed
		{in: strings.Repeat("t", registry.MaxSelectorTypeLen+1) + ":v", wantErr: "type is longer"},
		{in: "t:" + strings.Repeat("v", registry.MaxSelectorValueLen+1), wantErr: "value is longer"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 20)], func(t *testing.T) {
			got, err := registry.ParseSelector(tt.in)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, registry.ErrInvalid)
				require.ErrorContains(t, err, tt.wantErr)
				assert.True(t, strings.HasPrefix(err.Error(), "registry: "))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.in, got.String())
		})
	}
	// A type with ':' cannot come from parsing, but can be built.
	require.ErrorIs(t, registry.Selector{Type: "a:b", Value: "c"}.Validate(), registry.ErrInvalid)
	assert.Equal(t, -1, registry.Selector{Type: "a", Value: "z"}.Compare(registry.Selector{Type: "b", Value: "a"}))
	assert.Equal(t, 1, registry.Selector{Type: "a", Value: "z"}.Compare(registry.Selector{Type: "a", Value: "a"}))
}

func FuzzParseSelector(f *testing.F) {
	f.Add("unix:uid:1000")
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := registry.ParseSelector(s)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.NoError(t, sel.Validate())
		again, err := registry.ParseSelector(sel.String())
		require.NoError(t, err)
		require.Equal(t, sel, again)
	})
}

func valid() registry.Entry {
	return registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []registry.Selector{{Type: "unix", Value: "uid:1"}},
	}
}

func TestEntryValidate(t *testing.T) {
	long := spiffeid.RequireFromString("spiffe://example.org/" + strings.Repeat("a", registry.MaxIDLen))
	tests := []struct {
		name    string
		mutate  func(e *registry.Entry)
		wantErr string
	}{
		{"valid", func(*registry.Entry) {}, ""},
		{"wildcard DNS name", func(e *registry.Entry) { e.DNSNames = []string{"*.example.org", "a-b.example.org"} }, ""},
		{"parent is a trust domain", func(e *registry.Entry) { e.ParentID = spiffeid.RequireFromString("spiffe://example.org") }, ""},
		{"no SPIFFE ID", func(e *registry.Entry) { e.SPIFFEID = spiffeid.ID{} }, "SPIFFE ID is missing"},
		{"SPIFFE ID without path", func(e *registry.Entry) { e.SPIFFEID = spiffeid.RequireFromString("spiffe://example.org") }, "has no path"},
		{"SPIFFE ID too long", func(e *registry.Entry) { e.SPIFFEID = long }, "SPIFFE ID is longer"},
		{"no parent", func(e *registry.Entry) { e.ParentID = spiffeid.ID{} }, "parent ID is missing"},
		{"parent too long", func(e *registry.Entry) { e.ParentID = long }, "parent ID is longer"},
		{"no selectors", func(e *registry.Entry) { e.Selectors = nil }, "no selectors"},
		{"too many selectors", func(e *registry.Entry) {
			for i := range registry.MaxSelectors {
				e.Selectors = append(e.Selectors, registry.Selector{Type: "t", Value: fmt.Sprint(i)})
			}
		}, "at most 64"},
		{"invalid selector", func(e *registry.Entry) { e.Selectors[0].Value = "" }, "empty value"},
		{"duplicate selector", func(e *registry.Entry) { e.Selectors = append(e.Selectors, e.Selectors[0]) }, "duplicate selector"},
		{"negative X509 TTL", func(e *registry.Entry) { e.X509SVIDTTL = -1 }, "X509-SVID TTL"},
		{"negative JWT TTL", func(e *registry.Entry) { e.JWTSVIDTTL = -1 }, "JWT-SVID TTL"},
		{"too many DNS names", func(e *registry.Entry) { e.DNSNames = make([]string, registry.MaxDNSNames+1) }, "DNS names"},
		{"empty DNS name", func(e *registry.Entry) { e.DNSNames = []string{""} }, "empty DNS name"},
		{"DNS name too long", func(e *registry.Entry) { e.DNSNames = []string{strings.Repeat("a.", 127) + "a"} }, "DNS name is longer"},
		{"DNS label too long", func(e *registry.Entry) { e.DNSNames = []string{strings.Repeat("a", 64) + ".org"} }, "not a valid host name"},
		{"DNS label with hyphen at end", func(e *registry.Entry) { e.DNSNames = []string{"a-.org"} }, "not a valid host name"},
		{"DNS empty label", func(e *registry.Entry) { e.DNSNames = []string{"a..org"} }, "not a valid host name"},
		{"DNS wildcard in the middle", func(e *registry.Entry) { e.DNSNames = []string{"a.*.org"} }, "not a valid host name"},
		{"duplicate DNS name", func(e *registry.Entry) { e.DNSNames = []string{"a.org", "a.org"} }, "duplicate DNS name"},
		{"too many federated", func(e *registry.Entry) { e.FederatesWith = make([]spiffeid.TrustDomain, registry.MaxFederatesWith+1) }, "federates with 65"},
		{"empty federated", func(e *registry.Entry) { e.FederatesWith = []spiffeid.TrustDomain{{}} }, "empty trust domain"},
		{"duplicate federated", func(e *registry.Entry) {
			td := spiffeid.RequireTrustDomainFromString("b.org")
			e.FederatesWith = []spiffeid.TrustDomain{td, td}
		}, "twice"},
		{"hint too long", func(e *registry.Entry) { e.Hint = strings.Repeat("h", registry.MaxHintLen+1) }, "hint is longer"},
		{"hint with control character", func(e *registry.Entry) { e.Hint = "a\nb" }, "hint contains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.mutate(&e)
			err := e.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestPrepare(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
	e, err := registry.PrepareCreate(valid(), now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2030, 1, 2, 2, 4, 5, 6000, time.UTC), e.CreatedAt)
	assert.True(t, registry.ValidEntryID(e.ID))
	assert.False(t, registry.ValidEntryID(strings.ToUpper(e.ID)))
	assert.False(t, registry.ValidEntryID(e.ID[1:]))

	stale := e
	stale.Revision = 0
	_, err = registry.PrepareUpdate(e, stale, now)
	require.ErrorIs(t, err, registry.ErrConflict)
	assert.EqualError(t, err, "registry: entry "+e.ID+" is at revision 1, not 0")
	require.ErrorIs(t, registry.CheckDelete(e, 2), registry.ErrConflict)
	require.NoError(t, registry.CheckDelete(e, 0))
	require.NoError(t, registry.CheckDelete(e, 1))
}

func TestFilterMatches(t *testing.T) {
	a, b := registry.Selector{Type: "t", Value: "a"}, registry.Selector{Type: "t", Value: "b"}
	e := valid()
	e.Selectors = []registry.Selector{a, b}
	f := func(m registry.MatchMode, sels ...registry.Selector) registry.Filter {
		return registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: sels, Match: m}}
	}
	assert.True(t, f(registry.MatchExact, b, a).Matches(e))
	assert.False(t, f(registry.MatchExact, a).Matches(e))
	assert.True(t, f(registry.MatchSubset, a, b, registry.Selector{Type: "t", Value: "c"}).Matches(e))
	assert.False(t, f(registry.MatchSubset, a).Matches(e), "an entry needing b is not granted to a caller with only a")
	assert.True(t, f(registry.MatchSuperset, a).Matches(e))
	assert.True(t, f(registry.MatchAny, a).Matches(e))
	assert.False(t, registry.Filter{BySPIFFEID: e.ParentID}.Matches(e))
	assert.False(t, registry.Filter{ByParentID: e.SPIFFEID}.Matches(e))
	assert.False(t, registry.Filter{ByHint: "x"}.Matches(e))
	assert.True(t, registry.Filter{}.Matches(e))
	require.ErrorIs(t, registry.Filter{ByHint: strings.Repeat("h", registry.MaxHintLen+1)}.Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{TrustDomains: []spiffeid.TrustDomain{{}}}}.Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{
		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("a.org")}, Match: 9}}.Validate(), registry.ErrInvalid)
}

func TestEvent(t *testing.T) {
	assert.Equal(t, "create", registry.OpCreate.String())
	assert.Equal(t, "update", registry.OpUpdate.String())
	assert.Equal(t, "delete", registry.OpDelete.String())
	assert.Equal(t, "Op(9)", registry.Op(9).String())
	assert.Equal(t, registry.Entry{}, registry.Event{}.Entry())
}

func TestPrepareCreateRejectsStoreFields(t *testing.T) {
	e := valid()
	e.ID = registry.NewEntryID()
	_, err := registry.PrepareCreate(e, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)
	e = valid()
	e.Revision = 1
	_, err = registry.PrepareCreate(e, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)
	e = valid()
	e.Selectors = nil
	_, err = registry.PrepareCreate(e, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)

	stored, err := registry.PrepareCreate(valid(), time.Now())
	require.NoError(t, err)
	bad := stored
	bad.Selectors = nil
	_, err = registry.PrepareUpdate(stored, bad, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)
	next := stored.Clone()
	next.Selectors = []registry.Selector{{Type: "z", Value: "1"}, {Type: "a", Value: "1"}}
	updated, err := registry.PrepareUpdate(stored, next, time.Now())
	require.NoError(t, err)
	assert.Equal(t, int64(2), updated.Revision)
	assert.Equal(t, "a", updated.Selectors[0].Type, "selectors are sorted")
	assert.Equal(t, "z", next.Selectors[0].Type, "the caller's slice is not touched")
}

func TestSimilarityKey(t *testing.T) {
	a, err := registry.PrepareCreate(valid(), time.Now())
	require.NoError(t, err)
	b, err := registry.PrepareCreate(valid(), time.Now())
	require.NoError(t, err)
	b.Hint, b.DNSNames = "different", []string{"x.org"}
	assert.Equal(t, registry.SimilarityKey(a), registry.SimilarityKey(b), "only SPIFFE ID, parent and selectors count")
	b.Selectors = append(b.Selectors, registry.Selector{Type: "unix", Value: "uid:2"})
	assert.NotEqual(t, registry.SimilarityKey(a), registry.SimilarityKey(b))
}

func TestValidateListArguments(t *testing.T) {
	require.NoError(t, registry.Page{}.Validate())
	require.NoError(t, registry.Page{Token: registry.NewEntryID(), Size: 5}.Validate())
	require.ErrorIs(t, registry.Page{Size: -1}.Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Page{Token: "zz"}.Validate(), registry.ErrInvalid)

	sf := func(m registry.MatchMode, sels ...registry.Selector) registry.Filter {
		return registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: sels, Match: m}}
	}
	require.NoError(t, sf(registry.MatchAny, registry.Selector{Type: "a", Value: "b"}).Validate())
	require.ErrorIs(t, sf(registry.MatchAny).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, sf(registry.MatchAny+1, registry.Selector{Type: "a", Value: "b"}).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, sf(registry.MatchExact, registry.Selector{Type: "a"}).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{}}.Validate(), registry.ErrInvalid)
	require.NoError(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{
		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("a.org")}}}.Validate())
}
