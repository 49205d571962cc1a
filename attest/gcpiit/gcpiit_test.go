package gcpiit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

const (
	testProject = "example-project"
	wantPath    = "/spiffekit/agent/gcp_iit/example-project/4567891234567891234"
)

func newTestServer(t testing.TB, c ServerConfig) *Server {
	t.Helper()
	if c.ProjectIDs == nil {
		c.ProjectIDs = []string{testProject}
	}
	s, err := NewServer(c)
	require.NoError(t, err)
	return s
}

func requireRejected(t *testing.T, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	require.Contains(t, err.Error(), contains)
}

// claims returns the claims of a token of the test instance issued now.
func claims() map[string]any {
	return gcemdtest.TestInstance().Claims(DefaultAudience, true, time.Now())
}

// engine returns the google.compute_engine claim of c, to change.
func engine(c map[string]any) map[string]any {
	return c["google"].(map[string]any)["compute_engine"].(map[string]any)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestAttestThroughMetadataServer(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the servers' cleanup
	google := gcemdtest.NewKey(t, 0)
	md := gcemdtest.Start(t, google, gcemdtest.TestInstance())

	client, err := NewClient(ClientConfig{Host: md.Host()})
	require.NoError(t, err)
	require.Equal(t, Type, client.Type())
	payload, err := client.Payload(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, md.Requests())
	require.Zero(t, md.Flavorless(), "a request without Metadata-Flavor: Google")
	require.Equal(t, DefaultAudience, md.LastAudience())

	srv := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, gcemdtest.NewKey(t, 1), google)})
	require.Equal(t, Type, srv.Type())
	res, err := srv.Attest(t.Context(), td, payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org"+wantPath, res.AgentID.String())
	require.False(t, res.CanReattest)
	want := attest.NewSelectors(
		attest.Selector{Type: Type, Value: "project-id:example-project"},
		attest.Selector{Type: Type, Value: "zone:us-central1-a"},
		attest.Selector{Type: Type, Value: "instance-name:node-1"},
		attest.Selector{Type: Type, Value: "instance-id:4567891234567891234"},
		attest.Selector{Type: Type, Value: "project-number:123456789012"},
		attest.Selector{Type: Type, Value: "sa:node@example-project.iam.gserviceaccount.com"},
	)
	require.True(t, want.Equal(res.Selectors), "got %v", res.Selectors)

	_, err = client.Respond(t.Context(), []byte("x"))
	require.Error(t, err)
	_, err = srv.Attest(t.Context(), spiffeid.TrustDomain{}, payload, nil)
	require.ErrorContains(t, err, "no trust domain")
}

// TestAudienceBoundToServer: an agent and a server of another audience
// than SPIRE's; a token for the default audience is refused by that
// server, and its token by a default one.
func TestAudienceBoundToServer(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	md := gcemdtest.Start(t, google, gcemdtest.TestInstance())
	const aud = "spiffe://example.org/spiffekit/server"
	client, err := NewClient(ClientConfig{Host: md.Host(), Audience: aud, ServiceAccount: "node@example-project.iam.gserviceaccount.com"})
	require.NoError(t, err)
	payload, err := client.Payload(t.Context())
	require.NoError(t, err)
	require.Equal(t, aud, md.LastAudience())

	bound := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google), Audience: aud})
	_, err = bound.Attest(t.Context(), td, payload, nil)
	require.NoError(t, err)
	plain := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google)})
	_, err = plain.Attest(t.Context(), td, payload, nil)
	requireRejected(t, err, `audience "spiffe://example.org/spiffekit/server" is not "spire-gcp-node-attestor"`)
	_, err = bound.Attest(t.Context(), td, []byte(google.Sign(t, claims())), nil)
	requireRejected(t, err, `audience "spire-gcp-node-attestor" is not`)
}

// TestAttacks tries each rule of the verification with a token that
// breaks it, and checks it is refused for that reason.
func TestAttacks(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	attacker := gcemdtest.NewKey(t, 2)
	srv := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google, gcemdtest.NewKey(t, 1))})
	with := func(change func(c map[string]any)) string {
		c := claims()
		change(c)
		return google.Sign(t, c)
	}
	now := time.Now()
	good := google.Sign(t, claims())
	parts := strings.Split(good, ".")

	header := func(h map[string]any) string {
		b, err := json.Marshal(h)
		require.NoError(t, err)
		return b64(b)
	}
	body, err := json.Marshal(claims())
	require.NoError(t, err)
	// alg none, with and without a signature.
	none := header(map[string]any{"alg": "none", "kid": google.ID, "typ": "JWT"}) + "." + b64(body) + "."
	// HS256 "signed" with Google's public key as the HMAC secret, in the
	// forms a confused verifier might use.
	pubDER, err := x509.MarshalPKIXPublicKey(&google.Private.PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) string {
		signing := header(map[string]any{"alg": "HS256", "kid": google.ID, "typ": "JWT"}) + "." + b64(body)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(signing))
		return signing + "." + b64(m.Sum(nil))
	}
	// The claims changed after signing (another project, allowed).
	tampered := func() string {
		c := claims()
		engine(c)["instance_id"] = "1"
		b, err := json.Marshal(c)
		require.NoError(t, err)
		return parts[0] + "." + b64(b) + "." + parts[2]
	}

	for _, tc := range []struct {
		name, token, err string
	}{
		{"empty", "", "payload is empty"},
		{"garbage", "not a token", "does not parse as an RS256 JWT"},
		{"huge", strings.Repeat("a", MaxTokenSize+1), "larger than 16384 bytes"},
		{"JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, "does not parse"},
		{"encrypted (five parts)", parts[0] + "." + parts[1] + ".." + parts[2] + ".x", "does not parse"},
		{"alg none", none, "does not parse as an RS256 JWT"},
		{"alg none, signed", none + parts[2], "does not parse as an RS256 JWT"},
		{"HS256 with the public key PEM", hs256(pubPEM), "does not parse as an RS256 JWT"},
		{"HS256 with the public key DER", hs256(pubDER), "does not parse as an RS256 JWT"},
		{"RS512", google.SignWith(t, claims(), jose.RS512, google.ID), "does not parse as an RS256 JWT"},
		{"PS256", google.SignWith(t, claims(), jose.PS256, google.ID), "does not parse as an RS256 JWT"},
		{"no key ID", google.SignWith(t, claims(), jose.RS256, ""), "names no key"},
		{"unknown key ID", attacker.Sign(t, claims()), "signed by an unknown key ID"},
		{"another key under Google's key ID", attacker.SignWith(t, claims(), jose.RS256, google.ID), "signature does not verify"},
		{"Google's other key's ID", google.SignWith(t, claims(), jose.RS256, gcemdtest.NewKey(t, 1).ID), "signature does not verify"},
		{"claims changed after signing", tampered(), "signature does not verify"},
		{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4], "signature does not verify"},
		{"wrong audience", with(func(c map[string]any) { c["aud"] = "https://example.com" }), `audience "https://example.com" is not "spire-gcp-node-attestor"`},
		{"two audiences", with(func(c map[string]any) { c["aud"] = []string{DefaultAudience, "other"} }), "audience"},
		{"no audience", with(func(c map[string]any) { delete(c, "aud") }), "audience"},
		{"wrong issuer", with(func(c map[string]any) { c["iss"] = "https://accounts.example.com" }), `issuer "https://accounts.example.com" is not Google's`},
		{"no issuer", with(func(c map[string]any) { delete(c, "iss") }), "issuer"},
		{"expired", with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}), "token is expired"},
		{"expired beyond the leeway", with(func(c map[string]any) { c["exp"] = now.Add(-2 * leeway).Unix() }), "token is expired"},
		{"issued in the future", with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(time.Hour).Unix(), now.Add(2*time.Hour).Unix()
		}), "issued in the future"},
		{"not yet valid", with(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }), "not valid yet"},
		{"no expiry", with(func(c map[string]any) { delete(c, "exp") }), "no expiry"},
		{"no issue time", with(func(c map[string]any) { delete(c, "iat") }), "no issue time"},
		{"expires before issued", with(func(c map[string]any) {
			c["exp"] = now.Add(30 * time.Second).Unix()
			c["iat"] = now.Add(40 * time.Second).Unix()
		}), "expires before it is issued"},
		{"exp a string", with(func(c map[string]any) { c["exp"] = "tomorrow" }), "signature does not verify"},
		{"standard format", google.Sign(t, gcemdtest.TestInstance().Claims(DefaultAudience, false, now)), "no google.compute_engine claims"},
		{"compute_engine not an object", with(func(c map[string]any) { c["google"] = map[string]any{"compute_engine": "x"} }), "signature does not verify"},
		{"no project", with(func(c map[string]any) { delete(engine(c), "project_id") }), "project ID \"\" is not a project ID"},
		{"domain-scoped project", with(func(c map[string]any) { engine(c)["project_id"] = "example.com:example-project" }), "domain-scoped"},
		{"project with a slash", with(func(c map[string]any) { engine(c)["project_id"] = "example-project/../x" }), "not a project ID"},
		{"no zone", with(func(c map[string]any) { delete(engine(c), "zone") }), "zone \"\" is not a zone name"},
		{"bad zone", with(func(c map[string]any) { engine(c)["zone"] = "us central1" }), "not a zone name"},
		{"no instance ID", with(func(c map[string]any) { delete(engine(c), "instance_id") }), "instance ID \"\" is not a number"},
		{"instance ID a path", with(func(c map[string]any) { engine(c)["instance_id"] = "../../server" }), "is not a number"},
		{"instance ID huge", with(func(c map[string]any) { engine(c)["instance_id"] = strings.Repeat("9", 2000) }), "is not a number"},
		{"bad instance name", with(func(c map[string]any) { engine(c)["instance_name"] = "Node_1" }), "not an instance name"},
		{"project not allowed", with(func(c map[string]any) { engine(c)["project_id"] = "attacker-project" }), "project attacker-project is not allowed (instance 4567891234567891234)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, []byte(tc.token), nil)
			requireRejected(t, err, tc.err)
		})
	}

	// The same good token is admitted, with surrounding white space too,
	// and a minute's skew is allowed.
	for _, tok := range []string{good, good + "\n", with(func(c map[string]any) { c["iat"] = now.Add(30 * time.Second).Unix() })} {
		res, err := srv.Attest(t.Context(), td, []byte(tok), nil)
		require.NoError(t, err)
		require.Equal(t, wantPath, res.AgentID.Path())
	}
	// The other issuer spelling is Google's too; an unverified e-mail is
	// no selector.
	res, err := srv.Attest(t.Context(), td, []byte(with(func(c map[string]any) {
		c["iss"] = "accounts.google.com"
		c["email_verified"] = false
	})), nil)
	require.NoError(t, err)
	for _, s := range res.Selectors.Slice() {
		require.NotContains(t, s.Value, "sa:")
	}
	// A selector value that is not valid is left out, not the attestation.
	res, err = srv.Attest(t.Context(), td, []byte(with(func(c map[string]any) {
		c["email"] = "a\x00b@example.com"
		engine(c)["project_number"] = 0
	})), nil)
	require.NoError(t, err)
	require.Len(t, res.Selectors.Slice(), 4)
}

// TestTimesFromServerClock: validity is judged by the server's clock.
func TestTimesFromServerClock(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	srv := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google)})
	tok := []byte(google.Sign(t, claims()))
	srv.now = func() time.Time { return time.Now().Add(61*time.Minute + leeway) }
	_, err := srv.Attest(t.Context(), td, tok, nil)
	requireRejected(t, err, "token is expired")
	srv.now = func() time.Time { return time.Now().Add(-leeway - time.Minute) }
	_, err = srv.Attest(t.Context(), td, tok, nil)
	requireRejected(t, err, "issued in the future")
	srv.now = func() time.Time { return time.Now().Add(59 * time.Minute) }
	_, err = srv.Attest(t.Context(), td, tok, nil)
	require.NoError(t, err)
}

func TestKeysFromURL(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	google, next := gcemdtest.NewKey(t, 0), gcemdtest.NewKey(t, 1)
	ks := gcemdtest.StartKeys(t, google)
	for _, url := range []string{ks.JWKSURL(), ks.CertsURL()} {
		t.Run(url[strings.LastIndex(url, "/v"):], func(t *testing.T) {
			ks.SetKeys(google)
			ks.SetStatus(200)
			before := ks.Fetches()
			srv := newTestServer(t, ServerConfig{KeysURL: url, HTTPClient: ks.Client()})
			now := time.Now()
			srv.now = func() time.Time { return now }
			require.Equal(t, before, ks.Fetches(), "NewServer fetches nothing")
			tok := []byte(google.Sign(t, claims()))
			for range 3 {
				_, err := srv.Attest(t.Context(), td, tok, nil)
				require.NoError(t, err)
			}
			require.Equal(t, before+1, ks.Fetches(), "the keys are cached")

			// A rotation: a token of the new key is refused within 30 s of
			// the last fetch, then admitted after one more; a made-up key
			// ID right after makes no fetch.
			ks.SetKeys(google, next)
			_, err := srv.Attest(t.Context(), td, []byte(next.Sign(t, claims())), nil)
			requireRejected(t, err, "unknown key ID")
			require.Equal(t, before+1, ks.Fetches())
			now = now.Add(refetchInterval)
			_, err = srv.Attest(t.Context(), td, []byte(next.Sign(t, claims())), nil)
			require.NoError(t, err)
			require.Equal(t, before+2, ks.Fetches())
			_, err = srv.Attest(t.Context(), td, []byte(next.SignWith(t, claims(), jose.RS256, "made-up")), nil)
			requireRejected(t, err, `unknown key ID "made-up"`)
			require.Equal(t, before+2, ks.Fetches(), "an unknown key ID within 30 s fetches nothing")
			now = now.Add(refetchInterval)
			_, err = srv.Attest(t.Context(), td, []byte(next.SignWith(t, claims(), jose.RS256, "made-up")), nil)
			requireRejected(t, err, "unknown key ID")
			require.Equal(t, before+3, ks.Fetches(), "30 s later, it fetches")

			// Past their hour the keys are fetched again; when that fails
			// the held ones serve for a day more, then nothing does.
			ks.SetStatus(503)
			now = now.Add(time.Hour)
			srv.now = func() time.Time { return now }
			tokAt := func() []byte {
				return []byte(google.Sign(t, gcemdtest.TestInstance().Claims(DefaultAudience, true, now)))
			}
			_, err = srv.Attest(t.Context(), td, tokAt(), nil)
			require.NoError(t, err)
			require.Equal(t, before+4, ks.Fetches())
			// Within 30 s of the failure, no fetch, and a key ID not held
			// is no rejection: the server cannot tell.
			_, err = srv.Attest(t.Context(), td, tokAt(), nil)
			require.NoError(t, err)
			_, err = srv.Attest(t.Context(), td, []byte(next.SignWith(t, gcemdtest.TestInstance().Claims(DefaultAudience, true, now), jose.RS256, "other")), nil)
			require.Error(t, err)
			require.NotErrorIs(t, err, attest.ErrNodeRejected)
			require.Equal(t, before+4, ks.Fetches())
			now = now.Add(maxStale + time.Minute)
			_, err = srv.Attest(t.Context(), td, tokAt(), nil)
			require.Error(t, err)
			require.NotErrorIs(t, err, attest.ErrNodeRejected, "the server could not decide")
			require.ErrorContains(t, err, "503")
		})
	}

	// Unreachable from the start: not a rejection.
	ks.SetStatus(200)
	srv := newTestServer(t, ServerConfig{KeysURL: "http://127.0.0.1:1/certs"})
	_, err := srv.Attest(t.Context(), td, []byte(google.Sign(t, claims())), nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
	// A cancelled attestation fetches nothing, and does not hold up the
	// next one.
	srv = newTestServer(t, ServerConfig{KeysURL: ks.JWKSURL(), HTTPClient: ks.Client()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = srv.Attest(ctx, td, []byte(google.Sign(t, claims())), nil)
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
	_, err = srv.Attest(t.Context(), td, []byte(google.Sign(t, claims())), nil)
	require.NoError(t, err)
}

func TestFetchErrors(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	ks := gcemdtest.StartKeys(t, google)
	for _, tc := range []struct {
		url, err string
	}{
		{ks.URL + "/missing", "404"},
		{"http://[::1", "missing ']'"},
	} {
		r := newRemoteKeys(tc.url, ks.Client())
		_, _, err := r.fetch(t.Context())
		require.ErrorContains(t, err, tc.err)
	}
}

func TestLifetimeOf(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = []string{kv[i+1]}
		}
		return m
	}
	for _, tc := range []struct {
		h    map[string][]string
		want time.Duration
	}{
		{h(), defaultKeysLifetime},
		{h("Cache-Control", "public, max-age=20683, must-revalidate, no-transform"), 20683 * time.Second},
		{h("Cache-Control", "max-age=5"), minKeysLifetime},
		{h("Cache-Control", "max-age=9999999"), maxKeysLifetime},
		{h("Cache-Control", "max-age=x"), defaultKeysLifetime},
		{h("Cache-Control", "no-cache"), defaultKeysLifetime},
		{h("Expires", "Sun, 06 Dec 2026 14:00:00 GMT"), 2 * time.Hour},
		{h("Expires", "Sun, 06 Dec 2026 11:00:00 GMT"), defaultKeysLifetime},
		{h("Expires", "soon"), defaultKeysLifetime},
		{h("Cache-Control", "max-age=120", "Expires", "Sun, 06 Dec 2026 14:00:00 GMT"), 2 * time.Minute},
	} {
		require.Equal(t, tc.want, lifetimeOf(tc.h, now), "%v", tc.h)
	}
}

func TestParseKeys(t *testing.T) {
	google, other := gcemdtest.NewKey(t, 0), gcemdtest.NewKey(t, 1)
	keys, err := ParseKeys(gcemdtest.JWKS(t, google, other))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.True(t, keys[google.ID].Equal(&google.Private.PublicKey))
	keys, err = ParseKeys(gcemdtest.CertsV1(t, google, other))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.True(t, keys[other.ID].Equal(&other.Private.PublicKey))

	jwk := func(k jose.JSONWebKey) map[string]any {
		b, err := k.MarshalJSON()
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	set := func(keys ...map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"keys": keys})
		require.NoError(t, err)
		return b
	}
	pub := jose.JSONWebKey{Key: &google.Private.PublicKey, KeyID: "k1", Use: "sig", Algorithm: "RS256"}
	enc := jwk(pub)
	enc["use"], enc["kid"] = "enc", "k2"
	noKID := jwk(jose.JSONWebKey{Key: &google.Private.PublicKey})
	ec := jwk(jose.JSONWebKey{Key: &ecKey(t).PublicKey, KeyID: "ec"})
	keys, err = ParseKeys(set(jwk(pub), enc, noKID, ec))
	require.NoError(t, err)
	require.Len(t, keys, 1, "the encryption key, the key without ID and the EC key are skipped")
	require.NotNil(t, keys["k1"])

	certsOf := func(m map[string]string) []byte {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: google.Certificate(t).Raw}))
	weak := weakCertificate(t)
	for _, tc := range []struct {
		name string
		doc  []byte
		err  string
	}{
		{"not JSON", []byte("{"), "not a JSON object"},
		{"null", []byte("null"), "null"},
		{"an array", []byte("[]"), "not a JSON object"},
		{"too large", []byte(`{"x":"` + strings.Repeat("a", MaxKeysSize) + `"}`), "larger than"},
		{"empty", []byte("{}"), "no RSA signing key"},
		{"empty set", set(), "no RSA signing key"},
		{"only EC", set(ec), "no RSA signing key"},
		{"duplicate key ID", set(jwk(pub), jwk(pub)), `two keys of ID "k1"`},
		{"private key", set(jwk(jose.JSONWebKey{Key: google.Private, KeyID: "p"})), "private"},
		{"keys not an array", []byte(`{"keys":{}}`), "keys"},
		{"cert not a string", []byte(`{"k":1}`), "not a PEM certificate string"},
		{"cert not PEM", certsOf(map[string]string{"k": "junk"}), "not one PEM certificate"},
		{"two certs", certsOf(map[string]string{"k": certPEM + certPEM}), "not one PEM certificate"},
		{"cert garbage", certsOf(map[string]string{"k": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}))}), "certificate \"k\""},
		{"weak key", certsOf(map[string]string{"k": weak}), "1024-bit RSA key"},
		{"empty key ID", certsOf(map[string]string{"": certPEM}), "key ID is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeys(tc.doc)
			require.ErrorContains(t, err, tc.err)
		})
	}
	many := map[string]string{}
	for i := range maxKeys + 1 {
		many[strings.Repeat("k", i+1)] = certPEM
	}
	_, err = ParseKeys(certsOf(many))
	require.ErrorContains(t, err, "more than 64 keys")
}

func TestServerConfiguration(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	for _, tc := range []struct {
		name string
		c    ServerConfig
		err  string
	}{
		{"no project", ServerConfig{}, "the project allow-list is required"},
		{"bad project", ServerConfig{ProjectIDs: []string{"Example"}}, `"Example" is not a project ID`},
		{"too many projects", ServerConfig{ProjectIDs: make([]string, maxListItems+1)}, "more than 4096"},
		{"audience with a newline", ServerConfig{ProjectIDs: []string{testProject}, Audience: "a\nb"}, "control character"},
		{"keys and URL", ServerConfig{ProjectIDs: []string{testProject}, Keys: gcemdtest.JWKS(t, google), KeysURL: "https://example.com"}, "not both"},
		{"bad keys", ServerConfig{ProjectIDs: []string{testProject}, Keys: []byte("{}")}, "no RSA signing key"},
		{"bad URL", ServerConfig{ProjectIDs: []string{testProject}, KeysURL: "file:///etc/keys"}, "want an https://"},
		{"template does not parse", ServerConfig{ProjectIDs: []string{testProject}, AgentPathTemplate: "/{{ .ProjectID"}, "agent path template"},
		{"template of an unknown field", ServerConfig{ProjectIDs: []string{testProject}, AgentPathTemplate: "/gcp_iit/{{ .Tag }}"}, "agent path template"},
		{"template outside gcp_iit", ServerConfig{ProjectIDs: []string{testProject}, AgentPathTemplate: "/x509pop/{{ .InstanceID }}"}, "does not start with /gcp_iit/"},
		{"template not a path", ServerConfig{ProjectIDs: []string{testProject}, AgentPathTemplate: "/gcp_iit/{{ .Zone }}/"}, "agent path template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.c)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestAgentPathTemplate(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	srv := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google),
		AgentPathTemplate: "/{{ .PluginName }}/{{ .ProjectNumber }}/{{ .Zone }}/{{ .InstanceName }}"})
	res, err := srv.Attest(t.Context(), td, []byte(google.Sign(t, claims())), nil)
	require.NoError(t, err)
	require.Equal(t, "/spiffekit/agent/gcp_iit/123456789012/us-central1-a/node-1", res.AgentID.Path())

	// A template whose output is not a path for some instance refuses it.
	srv = newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google), AgentPathTemplate: "/gcp_iit/{{ .ProjectID }}{{ if eq .InstanceName \"node-1\" }}//{{ end }}"})
	_, err = srv.Attest(t.Context(), td, []byte(google.Sign(t, claims())), nil)
	requireRejected(t, err, "agent path template")
}

func TestClientConfiguration(t *testing.T) {
	for _, tc := range []struct {
		c   ClientConfig
		err string
	}{
		{ClientConfig{Timeout: -1}, "negative timeout"},
		{ClientConfig{Host: "http://metadata.google.internal"}, "no scheme"},
		{ClientConfig{Host: "metadata/x"}, "no scheme"},
		{ClientConfig{ServiceAccount: "../token"}, "want \"default\" or an e-mail"},
		{ClientConfig{ServiceAccount: "a@b/identity"}, "want \"default\" or an e-mail"},
		{ClientConfig{Audience: "a\r\nb"}, "control character"},
	} {
		_, err := NewClient(tc.c)
		require.ErrorContains(t, err, tc.err, "%+v", tc.c)
	}
	c, err := NewClient(ClientConfig{Host: "metadata.google.internal:80"})
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, c.timeout)
	require.Equal(t, "instance/service-accounts/default/identity?audience=spire-gcp-node-attestor&format=full", c.suffix)
	_, err = NewClient(ClientConfig{Host: "[::1]:8080"})
	require.NoError(t, err)
}

// TestClientHostileServer: a metadata server that floods, stalls,
// answers with something else or is not there ends the fetch with an
// error, within its timeout.
func TestClientHostileServer(t *testing.T) {
	defer leaktest.Check(t)()
	google := gcemdtest.NewKey(t, 0)
	start := func(t *testing.T, body string) *gcemdtest.Server {
		md := gcemdtest.Start(t, google, gcemdtest.TestInstance())
		md.SetBody(body)
		return md
	}
	fetch := func(t *testing.T, c ClientConfig) error {
		client, err := NewClient(c)
		require.NoError(t, err)
		_, err = client.Payload(t.Context())
		return err
	}
	t.Run("huge token", func(t *testing.T) {
		md := start(t, strings.Repeat("x", 1<<20))
		require.ErrorContains(t, fetch(t, ClientConfig{Host: md.Host()}), "larger than 16384 bytes")
	})
	t.Run("just within the bound", func(t *testing.T) {
		md := start(t, "a."+strings.Repeat("x", MaxTokenSize-4)+".c")
		require.NoError(t, fetch(t, ClientConfig{Host: md.Host()}))
	})
	t.Run("not a JWT", func(t *testing.T) {
		md := start(t, "<html>hello</html>")
		require.ErrorContains(t, fetch(t, ClientConfig{Host: md.Host()}), "not a JWT")
	})
	t.Run("empty", func(t *testing.T) {
		md := start(t, " \n")
		require.ErrorContains(t, fetch(t, ClientConfig{Host: md.Host()}), "is empty")
	})
	t.Run("unknown service account", func(t *testing.T) {
		md := start(t, "")
		require.ErrorContains(t, fetch(t, ClientConfig{Host: md.Host(), ServiceAccount: "other@example-project.iam.gserviceaccount.com"}), "not defined")
	})
	t.Run("never answers", func(t *testing.T) {
		md := start(t, gcemdtest.Hang)
		err := fetch(t, ClientConfig{Host: md.Host(), Timeout: 300 * time.Millisecond})
		require.Error(t, err)
		require.Positive(t, md.HungCalls())
	})
	t.Run("nothing listens", func(t *testing.T) {
		md := start(t, "")
		host := md.Host()
		md.Close()
		require.Error(t, fetch(t, ClientConfig{Host: host, Timeout: 2 * time.Second}))
	})
	t.Run("cancelled", func(t *testing.T) {
		md := start(t, "")
		client, err := NewClient(ClientConfig{Host: md.Host()})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = client.Payload(ctx)
		require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "canceled"), "%v", err)
	})
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// weakCertificate returns a PEM certificate of a 1,024-bit RSA key.
func weakCertificate(t *testing.T) string {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
