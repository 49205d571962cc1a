package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestSelectorLimits checks that entries, agents and filters take exactly
// the selectors attest.Selector.Validate takes, each limit reached and not
// exceeded, and that a rejection wraps both ErrInvalid and
// attest.ErrInvalidSelector.
func TestSelectorLimits(t *testing.T) {
	longPath := "/" + strings.Repeat("é", 4095/2) // 4095 bytes: PATH_MAX with its NUL
	tests := []struct {
		name    string
		sel     attest.Selector
		wantErr string // "" if valid
	}{
		{"simple", attest.Selector{Type: "unix", Value: "uid:1000"}, ""},
		{"value with colons and spaces", attest.Selector{Type: "k8s", Value: "pod-label:app:my app"}, ""},
		{"type at limit", attest.Selector{Type: strings.Repeat("t", attest.MaxTypeLength), Value: "v"}, ""},
		{"value at limit", attest.Selector{Type: "t", Value: strings.Repeat("v", attest.MaxValueLength)}, ""},
		{"multi-byte value at limit", attest.Selector{Type: "t", Value: strings.Repeat("€", attest.MaxValueLength/3) + strings.Repeat("v", attest.MaxValueLength%3)}, ""},
		{"unix path of PATH_MAX", attest.Selector{Type: "unix", Value: "path:" + longPath + " (deleted)"}, ""},
		{"non-ASCII value", attest.Selector{Type: "unix", Value: "user:jürgen"}, ""},
		{"empty type", attest.Selector{Value: "v"}, "type is empty"},
		{"type over limit by one", attest.Selector{Type: strings.Repeat("t", attest.MaxTypeLength+1), Value: "v"}, "type is longer than 64 bytes"},
		{"type with colon", attest.Selector{Type: "a:b", Value: "v"}, "contains ':'"},
		{"type with space", attest.Selector{Type: "a b", Value: "v"}, "contains ' '"},
		{"type not ASCII", attest.Selector{Type: "ünix", Value: "v"}, "contains"},
		{"empty value", attest.Selector{Type: "t"}, "empty value"},
		{"value over limit by one", attest.Selector{Type: "t", Value: strings.Repeat("v", attest.MaxValueLength+1)}, "value is longer than 8192 bytes"},
		{"value with NUL", attest.Selector{Type: "t", Value: "a\x00"}, "control character"},
		{"value with newline", attest.Selector{Type: "t", Value: "a\nb"}, "control character"},
		{"value with DEL", attest.Selector{Type: "t", Value: "a\x7f"}, "control character"},
		{"value not UTF-8", attest.Selector{Type: "unix", Value: "path:/bin/\xff"}, "not valid UTF-8"},
		{"value with truncated rune", attest.Selector{Type: "t", Value: "\xe2\x82"}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			e.Selectors = []attest.Selector{tt.sel}
			a := validAgent()
			a.Selectors = []attest.Selector{tt.sel}
			f := registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: []attest.Selector{tt.sel}}}
			for what, err := range map[string]error{"selector": tt.sel.Validate(), "entry": e.Validate(), "agent": a.Validate(), "filter": f.Validate()} {
				if tt.wantErr == "" {
					require.NoError(t, err, what)
					continue
				}
				require.ErrorIs(t, err, attest.ErrInvalidSelector, what)
				require.ErrorContains(t, err, tt.wantErr, what)
				assert.Less(t, len(err.Error()), 300, "%s: error messages stay short", what)
				if what != "selector" {
					require.ErrorIs(t, err, registry.ErrInvalid, what)
					assert.True(t, strings.HasPrefix(err.Error(), "registry: "), err.Error())
				}
			}
		})
	}
}

// FuzzParseSelector checks that registry entries take exactly the selectors
// attest.ParseSelector takes.
func FuzzParseSelector(f *testing.F) {
	f.Add("unix:uid:1000")
	f.Fuzz(func(t *testing.T, s string) {
		typ, value, _ := strings.Cut(s, ":")
		e := valid()
		e.Selectors = []attest.Selector{{Type: typ, Value: value}}
		err := e.Validate()
		sel, perr := attest.ParseSelector(s)
		if perr != nil {
			require.ErrorIs(t, err, registry.ErrInvalid)
			return
		}
		require.NoError(t, err)
		require.Equal(t, e.Selectors[0], sel)
		require.Equal(t, s, sel.String())
		again, err := attest.ParseSelector(sel.String())
		require.NoError(t, err)
		require.Equal(t, sel, again)
	})
}

func valid() registry.Entry {
	return registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
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
				e.Selectors = append(e.Selectors, attest.Selector{Type: "t", Value: fmt.Sprint(i)})
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
	a, b := attest.Selector{Type: "t", Value: "a"}, attest.Selector{Type: "t", Value: "b"}
	e := valid()
	e.Selectors = []attest.Selector{a, b}
	f := func(m registry.MatchMode, sels ...attest.Selector) registry.Filter {
		return registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: sels, Match: m}}
	}
	assert.True(t, f(registry.MatchExact, b, a).Matches(e))
	assert.False(t, f(registry.MatchExact, a).Matches(e))
	assert.True(t, f(registry.MatchSubset, a, b, attest.Selector{Type: "t", Value: "c"}).Matches(e))
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
	e.ID = "Not-An-ID"
	_, err := registry.PrepareCreate(e, time.Now())
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), `entry ID "Not-An-ID" is not 32 lowercase hexadecimal digits`)
	e = valid()
	e.ID = registry.NewEntryID()
	chosen, err := registry.PrepareCreate(e, time.Now())
	require.NoError(t, err)
	assert.Equal(t, e.ID, chosen.ID, "an ID of the stores' form is kept")
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
	next.Selectors = []attest.Selector{{Type: "z", Value: "1"}, {Type: "a", Value: "1"}}
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
	b.Selectors = append(b.Selectors, attest.Selector{Type: "unix", Value: "uid:2"})
	assert.NotEqual(t, registry.SimilarityKey(a), registry.SimilarityKey(b))
}

func TestValidateListArguments(t *testing.T) {
	require.NoError(t, registry.Page{}.Validate())
	require.NoError(t, registry.Page{Token: registry.NewEntryID(), Size: 5}.Validate())
	require.ErrorIs(t, registry.Page{Size: -1}.Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Page{Token: "zz"}.Validate(), registry.ErrInvalid)

	sf := func(m registry.MatchMode, sels ...attest.Selector) registry.Filter {
		return registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: sels, Match: m}}
	}
	require.NoError(t, sf(registry.MatchAny, attest.Selector{Type: "a", Value: "b"}).Validate())
	require.ErrorIs(t, sf(registry.MatchAny).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, sf(registry.MatchAny+1, attest.Selector{Type: "a", Value: "b"}).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, sf(registry.MatchExact, attest.Selector{Type: "a"}).Validate(), registry.ErrInvalid)
	require.ErrorIs(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{}}.Validate(), registry.ErrInvalid)
	require.NoError(t, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{
		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("a.org")}}}.Validate())
}

func TestTopicString(t *testing.T) {
	for topic, want := range map[registry.Topic]string{
		0:                         "none",
		registry.TopicEntries:     "entries",
		registry.TopicAgents:      "agents",
		registry.TopicBundles:     "bundles",
		registry.TopicAuthorities: "authorities",
		registry.TopicEntries | registry.TopicAuthorities: "entries|authorities",
		registry.TopicAgents | 0x40:                       "agents|Topic(0x40)",
	} {
		assert.Equal(t, want, topic.String())
	}
}

func TestNotFoundf(t *testing.T) {
	err := registry.NotFoundf("agent %q", "spiffe://example.org/a")
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, `registry: agent "spiffe://example.org/a" not found`)
	assert.NotErrorIs(t, err, registry.ErrInvalid)
	wrapped := fmt.Errorf("admin: %w", err)
	require.ErrorIs(t, wrapped, registry.ErrNotFound)
}
