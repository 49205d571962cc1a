package exchange_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// benchmarkExchange serves one form through the handler, as the HTTP
// server would, b.N times: parse, verify (ES256, keys cached), match the
// registry index, mint, encode.
func benchmarkExchange(b *testing.B, body func(e *env) string) {
	e := newEnv(b, func(c *exchange.Config) {
		c.Rate, c.Burst, c.SubjectRate, c.SubjectBurst = 1e9, 1e9, 1e9, 1e9
	})
	e.register(b, "spiffe://example.org/ci/app", spiffeid.ID{}, e.sub("alice"), e.claim("repository", "acme/app"))
	// Other entries, as a registry holds.
	for i := range 1000 {
		e.register(b, "spiffe://example.org/w/"+strings.Repeat("x", 3)+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)),
			spiffeid.ID{}, e.sub("user"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))))
	}
	form := body(e)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

func (e *env) benchToken(b *testing.B) string {
	c := e.iss.Claims("alice", audience)
	c["repository"] = "acme/app"
	c["ref"] = "refs/heads/main"
	c["exp"] = c["iat"].(int64) + 3600
	return e.iss.Mint(b, c)
}

func BenchmarkExchangeJWTSVID(b *testing.B) {
	benchmarkExchange(b, func(e *env) string { return jwtForm(e.benchToken(b), "https://api.example.com").Encode() })
}

// BenchmarkExchangeJWTSVIDRS256 is BenchmarkExchangeJWTSVID with a token
// signed RS256 by a 2048-bit key, as GitHub's, GitLab's and Kubernetes'
// are.
func BenchmarkExchangeJWTSVIDRS256(b *testing.B) {
	benchmarkExchange(b, func(e *env) string {
		e.iss.Rotate(b, jose.RS256)
		return jwtForm(e.benchToken(b), "https://api.example.com").Encode()
	})
}

func BenchmarkExchangeX509SVID(b *testing.B) {
	benchmarkExchange(b, func(e *env) string { return x509Form(b, e.benchToken(b), newKey(b)).Encode() })
}
