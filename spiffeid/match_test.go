package spiffeid_test

import (
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
)

func TestMatchers(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	a := spiffeid.RequireFromString("spiffe://example.org/a")
	b := spiffeid.RequireFromString("spiffe://example.org/b")
	prod := spiffeid.RequireFromString("spiffe://example.org/ns/prod")
	prodWeb := spiffeid.RequireFromString("spiffe://example.org/ns/prod/web")
	production := spiffeid.RequireFromString("spiffe://example.org/ns/production")
	foreign := spiffeid.RequireFromString("spiffe://evil.org/a")
	foreignProd := spiffeid.RequireFromString("spiffe://evil.org/ns/prod/web")

	tests := []struct {
		name    string
		matcher spiffeid.Matcher
		id      spiffeid.ID
		wantErr string
	}{
		{"any accepts", spiffeid.MatchAny(), foreign, ""},
		{"id accepts", spiffeid.MatchID(a), a, ""},
		{"id rejects other", spiffeid.MatchID(a), b, `spiffeid: unexpected ID "spiffe://example.org/b"`},
		{"id rejects other trust domain", spiffeid.MatchID(a), foreign, `spiffeid: unexpected ID "spiffe://evil.org/a"`},
		{"one of accepts", spiffeid.MatchOneOf(a, b), b, ""},
		{"one of rejects", spiffeid.MatchOneOf(a, b), prod, `spiffeid: unexpected ID "spiffe://example.org/ns/prod"`},
		{"one of nothing rejects", spiffeid.MatchOneOf(), a, `spiffeid: unexpected ID "spiffe://example.org/a"`},
		{"member accepts", spiffeid.MatchMemberOf(td), prodWeb, ""},
		{"member rejects", spiffeid.MatchMemberOf(td), foreign, `spiffeid: unexpected trust domain "evil.org"`},
		{"member of zero rejects zero", spiffeid.MatchMemberOf(spiffeid.TrustDomain{}), spiffeid.ID{}, `spiffeid: unexpected trust domain ""`},
		{"prefix accepts itself", spiffeid.MatchIDPrefix(prod), prod, ""},
		{"prefix accepts child", spiffeid.MatchIDPrefix(prod), prodWeb, ""},
		{"prefix needs segment boundary", spiffeid.MatchIDPrefix(prod), production, `spiffeid: unexpected ID "spiffe://example.org/ns/production"`},
		{"prefix needs same trust domain", spiffeid.MatchIDPrefix(prod), foreignProd, `spiffeid: unexpected ID "spiffe://evil.org/ns/prod/web"`},
		{"prefix without path matches nothing", spiffeid.MatchIDPrefix(td.ID()), a, "spiffeid: prefix must have a path"},
		{"prefix rejects zero", spiffeid.MatchIDPrefix(prod), spiffeid.ID{}, `spiffeid: unexpected ID ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.matcher(tt.id)
			if tt.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.EqualError(t, err, tt.wantErr)
			}
		})
	}
}
