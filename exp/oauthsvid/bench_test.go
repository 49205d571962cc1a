package oauthsvid_test

import (
	"net/url"
	"strings"
	"testing"
)

// BenchmarkAuthenticateJWT measures Validator.Authenticate on a token
// request with a JWT-SVID client assertion (ES256): the form, the JWT-SVID's
// signature and claims, the registry.
func BenchmarkAuthenticateJWT(b *testing.B) {
	d := newDomain(b, "example.org")
	v := newValidator(b, d, nil)
	body := assertionForm(d.token(b, "/client", issuer)).Encode()
	b.ReportAllocs()
	for b.Loop() {
		r := tokenRequest(url.Values{})
		r.Body = nopCloser{strings.NewReader(body)}
		r.ContentLength = int64(len(body))
		if _, err := v.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
