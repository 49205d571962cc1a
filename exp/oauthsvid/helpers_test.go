package oauthsvid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

const (
	issuer   = "https://as.example.com"
	tokenURL = issuer + "/token"
)

// domain is the JWT and X.509 authorities of one trust domain.
type domain struct {
	td   spiffeid.TrustDomain
	jwt  *ca.JWTAuthority
	x509 *ca.X509Authority
	root *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	return k
}

func newDomain(tb testing.TB, name string) *domain {
	tb.Helper()
	d := &domain{td: spiffeid.RequireTrustDomainFromString(name), key: newKey(tb)}
	var err error
	d.jwt, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: d.key, TrustDomain: d.td})
	require.NoError(tb, err)
	d.root, err = ca.CreateRoot(context.Background(), ca.RootParams{Signer: d.key, TrustDomain: d.td})
	require.NoError(tb, err)
	d.x509, err = ca.NewX509Authority(ca.X509AuthorityConfig{Signer: d.key, Certificate: d.root})
	require.NoError(tb, err)
	return d
}

func (d *domain) id(path string) spiffeid.ID { return spiffeid.RequireFromPath(d.td, path) }

func (d *domain) jwtBundle() *jwtbundle.Bundle {
	b := jwtbundle.New(d.td)
	if err := b.AddJWTAuthority(d.jwt.KeyID(), d.jwt.PublicKey()); err != nil {
		panic(err)
	}
	return b
}

func (d *domain) x509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(d.td, []*x509.Certificate{d.root})
}

func (d *domain) token(tb testing.TB, path string, aud ...string) string {
	tb.Helper()
	token, err := d.jwt.SignJWTSVID(context.Background(), ca.JWTSVIDParams{ID: d.id(path), Audience: aud, TTL: 5 * time.Minute})
	require.NoError(tb, err)
	return token
}

func (d *domain) x509SVID(tb testing.TB, path string) *x509svid.SVID {
	tb.Helper()
	key := newKey(tb)
	chain, err := d.x509.SignX509SVID(context.Background(), ca.X509SVIDParams{PublicKey: key.Public(), ID: d.id(path)})
	require.NoError(tb, err)
	return &x509svid.SVID{ID: d.id(path), Certificates: chain, PrivateKey: key}
}

// jwtSource mints JWT-SVIDs for one path of a domain.
type jwtSource struct {
	d    *domain
	path string
	tb   testing.TB
}

func (s jwtSource) FetchJWTSVID(_ context.Context, p jwtsvid.Params) (*jwtsvid.SVID, error) {
	token := s.d.token(s.tb, s.path, append([]string{p.Audience}, p.ExtraAudiences...)...)
	return jwtsvid.ParseInsecure(token, []string{p.Audience})
}

// tokenRequest is a POST of form to the token endpoint.
func tokenRequest(form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func assertionForm(token string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"},
		"client_assertion":      {token},
	}
}
