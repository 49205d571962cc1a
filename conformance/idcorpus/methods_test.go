package idcorpus

import (
	"testing"

	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestIDMethodsAgree compares the path-building methods and the matchers on
// the corpus paths, starting from a trust domain ID and a workload ID.
func TestIDMethodsAgree(t *testing.T) {
	paths := pathCorpus()
	for _, base := range []string{"spiffe://example.org", "spiffe://example.org/base"} {
		ours, gs := spiffeid.RequireFromString(base), gsid.RequireFromString(base)
		for _, p := range paths {
			o, oErr := ours.AppendPath(p)
			g, gErr := gs.AppendPath(p)
			if assert.Equal(t, gErr == nil, oErr == nil, "%s.AppendPath(%q): ours %v, go-spiffe %v", base, p, oErr, gErr) && gErr == nil {
				assert.Equal(t, g.String(), o.String())
			}
			o, oErr = ours.ReplacePath(p)
			g, gErr = gs.ReplacePath(p)
			if assert.Equal(t, gErr == nil, oErr == nil, "%s.ReplacePath(%q): ours %v, go-spiffe %v", base, p, oErr, gErr) && gErr == nil {
				assert.Equal(t, g.String(), o.String())
			}
		}
	}

	ids := []string{
		"spiffe://example.org", "spiffe://example.org/a", "spiffe://example.org/a/b", "spiffe://example.org/ab",
		"spiffe://example.org/A", "spiffe://other.org/a", "spiffe://example.org./a",
	}
	for _, e := range ids {
		oe, ge := spiffeid.RequireFromString(e), gsid.RequireFromString(e)
		for _, a := range ids {
			oa, ga := spiffeid.RequireFromString(a), gsid.RequireFromString(a)
			assert.Equal(t, gsid.MatchID(ge)(ga) == nil, spiffeid.MatchID(oe)(oa) == nil, "MatchID(%s)(%s)", e, a)
			assert.Equal(t, gsid.MatchMemberOf(ge.TrustDomain())(ga) == nil, spiffeid.MatchMemberOf(oe.TrustDomain())(oa) == nil, "MatchMemberOf(%s)(%s)", e, a)
			assert.Equal(t, gsid.MatchOneOf(ge, gsid.RequireFromString("spiffe://x.org/y"))(ga) == nil,
				spiffeid.MatchOneOf(oe, spiffeid.RequireFromString("spiffe://x.org/y"))(oa) == nil, "MatchOneOf(%s)(%s)", e, a)
			assert.Equal(t, gsid.MatchAny()(ga) == nil, spiffeid.MatchAny()(oa) == nil)
			if ge.Path() != "" {
				assert.Equal(t, gsid.MatchIDPrefix(ge)(ga) == nil, spiffeid.MatchIDPrefix(oe)(oa) == nil, "MatchIDPrefix(%s)(%s)", e, a)
			}
			assert.Equal(t, ge.MemberOf(ga.TrustDomain()), oe.MemberOf(oa.TrustDomain()), "%s.MemberOf(%s)", e, a)
			assert.Equal(t, ge.TrustDomain().Compare(ga.TrustDomain()), oe.TrustDomain().Compare(oa.TrustDomain()), "Compare(%s, %s)", e, a)
		}
	}

	for _, segs := range [][]string{{"a"}, {"a", "b"}, {}, {""}, {"a/b"}, {".."}, {"A", "9", "_-."}} {
		o, oErr := spiffeid.JoinPathSegments(segs...)
		g, gErr := gsid.JoinPathSegments(segs...)
		if assert.Equal(t, gErr == nil, oErr == nil, "JoinPathSegments(%q)", segs) {
			assert.Equal(t, g, o)
		}
	}
	for _, f := range []struct {
		format string
		args   []any
	}{{"/%s/%d", []any{"a", 1}}, {"/%s", []any{"a b"}}, {"%s", []any{"a"}}, {"/x/%s", []any{""}}} {
		o, oErr := spiffeid.FormatPath(f.format, f.args...)
		g, gErr := gsid.FormatPath(f.format, f.args...)
		if assert.Equal(t, gErr == nil, oErr == nil, "FormatPath(%q)", f.format) {
			assert.Equal(t, g, o)
		}
	}
}
