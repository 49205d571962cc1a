package spiffeid_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idTable is the conformance table of shared/spec/spiffe-id.md: the row
// number, the input, whether the standard (and our reading of it) accepts it,
// and the rule checked.
var idTable = []struct {
	row   int
	in    string
	valid bool
	rule  string
}{
	{1, "spiffe://example.org", true, "ID rule 9: trust domain ID, no path"},
	{2, "spiffe://example.org/workload", true, ""},
	{3, "spiffe://staging.example.com/payments/mysql", true, ""},
	{4, "spiffe://k8s-west.example.com/ns/staging/sa/default", true, ""},
	{5, "spiffe://example.org/9eebccd2-12bf-40a6-b262-65fe0487d453", true, "opaque path"},
	{6, "spiffe://trust_domain.example.com/svc", true, "ID rule 4: underscore"},
	{7, "spiffe://192.168.0.1/svc", true, "ID rule 7: IPv4 is just a name"},
	{8, "spiffe://localhost/svc", true, "ID rule 7: single label"},
	{9, "spiffe://-weird-_.name_/svc", true, "ID rule 7: no DNS rules"},
	{10, "spiffe://example.org./svc", true, "ID rule 7: trailing dot kept"},
	{11, "spiffe://example.org/Path/With/UPPER", true, "ID rules 10, 15"},
	{12, "spiffe://example.org/a.b-c_d/0", true, ""},
	{13, "spiffe://example.org/.hidden", true, "ID rule 13: not a dot segment"},
	{14, "spiffe://example.org/...", true, "ID rule 13: three dots"},
	{15, "spiffe://example.org/" + strings.Repeat("a", 2027), true, "ID rule 17: 2048 bytes must be accepted"},
	{16, "spiffe://" + strings.Repeat("a", 255) + "/w", true, "ID rule 8: 255-byte name"},
	{17, "", false, "ID rule 1: empty"},
	{18, "example.org/workload", false, "ID rule 1: no scheme"},
	{19, "https://example.org/workload", false, "ID rule 1: wrong scheme"},
	{20, "spiffe:/example.org/workload", false, "ID rule 1: no authority"},
	{21, "spiffe:example.org/workload", false, "ID rule 1"},
	{22, "SPIFFE://example.org/workload", false, "ID rule 1: lowercase scheme only (ours)"},
	{23, "spiffe://Example.org/workload", false, "ID rules 4, 5: uppercase name"},
	{24, "spiffe://", false, "ID rule 2: no trust domain"},
	{25, "spiffe:///workload", false, "ID rule 2"},
	{26, "spiffe://user@example.org/workload", false, "ID rule 3: userinfo"},
	{27, "spiffe://example.org:8443/workload", false, "ID rule 3: port"},
	{28, "spiffe://example.org:/workload", false, "ID rule 3: empty port"},
	{29, "spiffe://[::1]/workload", false, "ID rule 7: IPv6"},
	{30, "spiffe://ex%61mple.org/workload", false, "ID rule 6: percent-encoding"},
	{31, "spiffe://exämple.org/w", false, "ID rule 4: non-ASCII"},
	{32, "spiffe://exa~mple.org/w", false, "ID rule 4: tilde"},
	{33, "spiffe://example.org?x=1", false, "ID rule 16: query"},
	{34, "spiffe://example.org/workload?x=1", false, "ID rule 16: query"},
	{35, "spiffe://example.org/workload#frag", false, "ID rule 16: fragment"},
	{36, "spiffe://example.org/", false, "ID rule 14: trailing slash"},
	{37, "spiffe://example.org/workload/", false, "ID rule 14: trailing slash"},
	{38, "spiffe://example.org//workload", false, "ID rule 12: empty segment"},
	{39, "spiffe://example.org/a//b", false, "ID rule 12: empty segment"},
	{40, "spiffe://example.org/./workload", false, "ID rule 13: dot segment"},
	{41, "spiffe://example.org/a/../b", false, "ID rule 13: dot-dot segment"},
	{42, "spiffe://example.org/a/.", false, "ID rule 13: final dot segment"},
	{43, "spiffe://example.org/work%20load", false, "ID rule 11: percent-encoding"},
	{44, "spiffe://example.org/work load", false, "ID rule 10: space"},
	{45, "spiffe://example.org/wörk", false, "ID rule 10: non-ASCII"},
	{46, "spiffe://example.org/a~b", false, "ID rule 10: tilde"},
	{47, "spiffe://example.org/a:b", false, "ID rule 10: colon"},
	{48, "spiffe://example.org/a@b", false, "ID rule 10: at sign"},
	{49, " spiffe://example.org/workload", false, "ID rule 18: no trimming"},
	{50, "spiffe://example.org/workload\n", false, "ID rule 18: no trimming"},
	{51, "spiffe://" + strings.Repeat("a", 256) + "/w", false, "ID rule 8: name over 255 bytes (stricter than go-spiffe)"},
	{52, "spiffe://example.org/" + strings.Repeat("a", 5000), true, "ID rule 17: longer IDs are implementation-defined; we accept"},
}

func TestFromStringTable(t *testing.T) {
	for _, tt := range idTable {
		t.Run(fmt.Sprintf("row%02d", tt.row), func(t *testing.T) {
			id, err := spiffeid.FromString(tt.in)
			if !tt.valid {
				require.Error(t, err, "row %d: %q must be rejected", tt.row, tt.in)
				assert.True(t, strings.HasPrefix(err.Error(), "spiffeid: "), "error %q lacks the package prefix", err)
				assert.True(t, id.IsZero())
				return
			}
			require.NoError(t, err, "row %d: %q must be accepted", tt.row, tt.in)
			// ID rule 18: no normalisation, the string is kept byte for byte.
			assert.Equal(t, tt.in, id.String())
			assert.False(t, id.IsZero())
			again, err := spiffeid.FromString(id.String())
			require.NoError(t, err)
			assert.Equal(t, id, again)
		})
	}
}

func TestFromStringErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "spiffeid: cannot be empty"},
		{"http://x/y", "spiffeid: scheme is missing or invalid"},
		{"spiffe://", "spiffeid: trust domain is missing"},
		{"spiffe://a:1", "spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores"},
		{"spiffe://" + strings.Repeat("a", 256), "spiffeid: trust domain name cannot be longer than 255 bytes"},
		{"spiffe://a/b c", "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores"},
		{"spiffe://a//b", "spiffeid: path cannot contain empty segments"},
		{"spiffe://a/../b", "spiffeid: path cannot contain dot segments"},
		{"spiffe://a/b/", "spiffeid: path cannot have a trailing slash"},
	}
	for _, tt := range tests {
		_, err := spiffeid.FromString(tt.in)
		assert.EqualError(t, err, tt.msg, "input %q", tt.in)
	}
}

func TestIDParts(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://example.org/ns/prod")
	assert.Equal(t, "example.org", id.TrustDomain().Name())
	assert.Equal(t, "/ns/prod", id.Path())
	assert.Equal(t, &url.URL{Scheme: "spiffe", Host: "example.org", Path: "/ns/prod"}, id.URL())
	assert.Equal(t, "spiffe://example.org/ns/prod", id.URL().String())
	assert.True(t, id.MemberOf(spiffeid.RequireTrustDomainFromString("example.org")))
	assert.False(t, id.MemberOf(spiffeid.RequireTrustDomainFromString("example.com")))

	td := spiffeid.RequireFromString("spiffe://example.org")
	assert.Equal(t, "", td.Path())
	assert.Equal(t, td, td.TrustDomain().ID())

	var zero spiffeid.ID
	assert.True(t, zero.IsZero())
	assert.Equal(t, "", zero.String())
	assert.Equal(t, "", zero.Path())
	assert.True(t, zero.TrustDomain().IsZero())
	assert.Equal(t, &url.URL{}, zero.URL())
	// The zero ID belongs to no trust domain, not even the zero one.
	assert.False(t, zero.MemberOf(spiffeid.TrustDomain{}))
}

func TestIDComparable(t *testing.T) {
	a := spiffeid.RequireFromString("spiffe://example.org/a")
	b := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("example.org"), "/a")
	c := spiffeid.RequireFromString("spiffe://example.org/A") // ID rule 15: case-sensitive
	assert.True(t, a == b)
	assert.False(t, a == c)
	m := map[spiffeid.ID]int{a: 1}
	assert.Equal(t, 1, m[b])
}

func TestFromURI(t *testing.T) {
	id, err := spiffeid.FromURI(&url.URL{Scheme: "spiffe", Host: "example.org", Path: "/w"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/w", id.String())

	_, err = spiffeid.FromURI(nil)
	require.EqualError(t, err, "spiffeid: URI is nil")

	// ID rule 16: a query is never part of an ID.
	_, err = spiffeid.FromURI(&url.URL{Scheme: "spiffe", Host: "example.org", Path: "/w", RawQuery: "a=b"})
	require.Error(t, err)
	// ID rule 3: a port is not allowed.
	_, err = spiffeid.FromURI(&url.URL{Scheme: "spiffe", Host: "example.org:80", Path: "/w"})
	require.Error(t, err)
	// ID rule 11: a path needing escapes is rejected, not decoded.
	_, err = spiffeid.FromURI(&url.URL{Scheme: "spiffe", Host: "example.org", Path: "/a b"})
	require.Error(t, err)

	td, err := spiffeid.TrustDomainFromURI(&url.URL{Scheme: "spiffe", Host: "example.org", Path: "/w"})
	require.NoError(t, err)
	assert.Equal(t, "example.org", td.Name())
	_, err = spiffeid.TrustDomainFromURI(&url.URL{Scheme: "https", Host: "example.org"})
	require.Error(t, err)
}

func TestFromStringf(t *testing.T) {
	id, err := spiffeid.FromStringf("spiffe://%s/%s", "example.org", "w")
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/w", id.String())
	_, err = spiffeid.FromStringf("spiffe://%s/%s", "example.org", "a b")
	require.Error(t, err)
}

func TestConstruction(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")

	tests := []struct {
		name    string
		build   func() (spiffeid.ID, error)
		want    string
		wantErr string
	}{
		{"FromPath", func() (spiffeid.ID, error) { return spiffeid.FromPath(td, "/a/b") }, "spiffe://example.org/a/b", ""},
		{"FromPath empty", func() (spiffeid.ID, error) { return spiffeid.FromPath(td, "") }, "spiffe://example.org", ""},
		{"FromPath no slash", func() (spiffeid.ID, error) { return spiffeid.FromPath(td, "a") }, "", "path must have a leading slash"},
		{"FromPath zero td", func() (spiffeid.ID, error) { return spiffeid.FromPath(spiffeid.TrustDomain{}, "/a") }, "", "trust domain is empty"},
		{"FromPathf", func() (spiffeid.ID, error) { return spiffeid.FromPathf(td, "/ns/%s", "x") }, "spiffe://example.org/ns/x", ""},
		{"FromPathf bad", func() (spiffeid.ID, error) { return spiffeid.FromPathf(td, "/%s", "..") }, "", "dot segments"},
		{"FromSegments", func() (spiffeid.ID, error) { return spiffeid.FromSegments(td, "a", "b") }, "spiffe://example.org/a/b", ""},
		{"FromSegments none", func() (spiffeid.ID, error) { return spiffeid.FromSegments(td) }, "spiffe://example.org", ""},
		{"FromSegments slash", func() (spiffeid.ID, error) { return spiffeid.FromSegments(td, "a/b") }, "", "path segment characters"},
		{"FromSegments empty", func() (spiffeid.ID, error) { return spiffeid.FromSegments(td, "") }, "", "empty segments"},
		{"FromSegments zero td", func() (spiffeid.ID, error) { return spiffeid.FromSegments(spiffeid.TrustDomain{}, "a") }, "", "trust domain is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.build()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, id.String())
			// Built IDs are equal to parsed ones.
			assert.Equal(t, spiffeid.RequireFromString(tt.want), id)
		})
	}
}

func TestAppendAndReplace(t *testing.T) {
	base := spiffeid.RequireFromString("spiffe://example.org/ns")
	var zero spiffeid.ID

	tests := []struct {
		name    string
		build   func(spiffeid.ID) (spiffeid.ID, error)
		want    string
		wantErr string
	}{
		{"AppendPath", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendPath("/a/b") }, "spiffe://example.org/ns/a/b", ""},
		{"AppendPath bad", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendPath("a") }, "", "leading slash"},
		{"AppendPathf", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendPathf("/%d", 7) }, "spiffe://example.org/ns/7", ""},
		{"AppendPathf bad", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendPathf("/%s/", "x") }, "", "trailing slash"},
		{"AppendSegments", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendSegments("x", "y") }, "spiffe://example.org/ns/x/y", ""},
		{"AppendSegments bad", func(id spiffeid.ID) (spiffeid.ID, error) { return id.AppendSegments(".") }, "", "dot segments"},
		{"ReplacePath", func(id spiffeid.ID) (spiffeid.ID, error) { return id.ReplacePath("/z") }, "spiffe://example.org/z", ""},
		{"ReplacePath bad", func(id spiffeid.ID) (spiffeid.ID, error) { return id.ReplacePath("//") }, "", "empty segments"},
		{"ReplacePathf", func(id spiffeid.ID) (spiffeid.ID, error) { return id.ReplacePathf("/z%d", 1) }, "spiffe://example.org/z1", ""},
		{"ReplaceSegments", func(id spiffeid.ID) (spiffeid.ID, error) { return id.ReplaceSegments("q") }, "spiffe://example.org/q", ""},
		{"ReplaceSegments none", func(id spiffeid.ID) (spiffeid.ID, error) { return id.ReplaceSegments() }, "spiffe://example.org", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.build(base)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				assert.Equal(t, spiffeid.RequireFromString(tt.want), id)
			}
			// Every variant refuses the zero ID.
			_, err = tt.build(zero)
			require.ErrorContains(t, err, "zero ID value")
		})
	}
	assert.Equal(t, "spiffe://example.org/ns", base.String(), "the receiver is unchanged")
}

func TestIDText(t *testing.T) {
	id := spiffeid.RequireFromString("spiffe://example.org/w")
	text, err := id.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/w", string(text))

	var got spiffeid.ID
	require.NoError(t, got.UnmarshalText(text))
	assert.Equal(t, id, got)

	require.NoError(t, got.UnmarshalText(nil))
	assert.True(t, got.IsZero())

	text, err = spiffeid.ID{}.MarshalText()
	require.NoError(t, err)
	assert.Nil(t, text)

	got = id
	require.Error(t, got.UnmarshalText([]byte("spiffe://example.org/")))
	assert.Equal(t, id, got, "a failed unmarshal leaves the value alone")
}

func TestRequirePanics(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	assert.Panics(t, func() { spiffeid.RequireFromString("nope") })
	assert.Panics(t, func() { spiffeid.RequireFromStringf("%s", "nope") })
	assert.Panics(t, func() { spiffeid.RequireFromURI(&url.URL{Scheme: "x"}) })
	assert.Panics(t, func() { spiffeid.RequireFromPath(td, "nope") })
	assert.Panics(t, func() { spiffeid.RequireFromPathf(td, "%s", "nope") })
	assert.Panics(t, func() { spiffeid.RequireFromSegments(td, "a/b") })
	assert.Panics(t, func() { spiffeid.RequireTrustDomainFromString("Nope") })
	assert.Panics(t, func() { spiffeid.RequireTrustDomainFromURI(&url.URL{Scheme: "x"}) })
	assert.Panics(t, func() { spiffeid.RequireFormatPath("%s", "nope") })
	assert.Panics(t, func() { spiffeid.RequireJoinPathSegments("") })

	assert.Equal(t, "spiffe://example.org/a", spiffeid.RequireFromStringf("spiffe://example.org/%s", "a").String())
	assert.Equal(t, "spiffe://example.org/a", spiffeid.RequireFromURI(&url.URL{Scheme: "spiffe", Host: "example.org", Path: "/a"}).String())
	assert.Equal(t, "spiffe://example.org/a", spiffeid.RequireFromPathf(td, "/%s", "a").String())
	assert.Equal(t, "spiffe://example.org/a/b", spiffeid.RequireFromSegments(td, "a", "b").String())
	assert.Equal(t, td, spiffeid.RequireTrustDomainFromURI(&url.URL{Scheme: "spiffe", Host: "example.org"}))
	assert.Equal(t, "/a", spiffeid.RequireFormatPath("/%s", "a"))
	assert.Equal(t, "/a/b", spiffeid.RequireJoinPathSegments("a", "b"))
}
