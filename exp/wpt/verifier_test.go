package wpt_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/exp/wpt"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	testOrigin = "https://api.example.org"
	testURL    = testOrigin + "/v1/things?page=2#frag"
	testTarget = testOrigin + "/v1/things"
)

// rulesEnv is a verifier of one trust domain with a fixed clock, and a
// caller's WIT-SVID.
type rulesEnv struct {
	td    *trustDomain
	svid  *witsvid.SVID
	clock *clock
	v     *wpt.Verifier
}

func newRulesEnv(t *testing.T, mod func(*wpt.Config)) *rulesEnv {
	t.Helper()
	e := &rulesEnv{td: newTrustDomain(t, "example.org"), clock: newClock()}
	e.svid = e.td.svid(t, "/client")
	cfg := wpt.Config{
		Bundles:           witbundle.NewSet(e.td.bundle()),
		Origins:           []string{testOrigin},
		Now:               e.clock.Now,
		OtherTokenHeaders: []string{"X-User-Token"},
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := wpt.NewVerifier(cfg)
	require.NoError(t, err)
	e.v = v
	return e
}

// claims returns valid claims of a GET of testURL by e.svid.
func (e *rulesEnv) claims() map[string]any {
	now := e.clock.Now()
	var jti [16]byte
	rand.Read(jti[:])
	return map[string]any{
		"aud": testTarget,
		"exp": now.Add(time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
		"wth": wpt.Hash(e.svid.Marshal()),
		"htm": http.MethodGet,
	}
}

func (e *rulesEnv) sign(t *testing.T, claims map[string]any) string {
	return rawToken(t, e.svid.PrivateKey, jose.ES256, wpt.TokenType, claims)
}

func request(wit, authorization string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, testURL, nil)
	r.Header.Set(wpt.WITHeader, wit)
	r.Header.Set("Authorization", authorization)
	return r
}

func (e *rulesEnv) request(token string) *http.Request {
	return request(e.svid.Marshal(), "WPT "+token)
}

func TestVerifyAcceptsMintedProof(t *testing.T) {
	e := newRulesEnv(t, nil)
	token, err := wpt.Mint(e.svid, wpt.MintParams{Audience: testTarget, Method: http.MethodGet, Now: e.clock.Now()})
	require.NoError(t, err)
	res, err := e.v.Verify(e.request(token))
	require.NoError(t, err)
	assert.Equal(t, e.td.id("/client"), res.ID)
	assert.Equal(t, e.svid.Marshal(), res.WIT.Marshal())
	assert.Equal(t, []string{testTarget}, res.Claims.Audience)
	assert.Equal(t, http.MethodGet, res.Claims.Method)
	assert.Equal(t, wpt.Hash(e.svid.Marshal()), res.Claims.WITHash)
	assert.Equal(t, e.clock.Now().Add(wpt.DefaultLifetime).UTC(), res.Claims.Expiry)
	assert.Equal(t, e.clock.Now().UTC(), res.Claims.IssuedAt)
	assert.Len(t, res.Claims.ID, 22) // 128 bits, base64url
	assert.Empty(t, res.Claims.TxnTokenHash)
	assert.Nil(t, res.Claims.OtherTokenHashes)
}

// TestVerifyRules tries to break each rule of draft-ietf-wimse-wpt-02 §2 and
// of this package, one row at a time; every row but the "ok" ones must be
// refused with the error it names.
func TestVerifyRules(t *testing.T) {
	other := newTrustDomain(t, "other.test")
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)

	type row struct {
		name string
		// build returns the request to verify; it starts from valid claims.
		build func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request
		want  error // nil: accepted
	}
	signed := func(mod func(c map[string]any)) func(*testing.T, *rulesEnv, map[string]any) *http.Request {
		return func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			mod(c)
			return e.request(e.sign(t, c))
		}
	}
	withRequest := func(mod func(r *http.Request)) func(*testing.T, *rulesEnv, map[string]any) *http.Request {
		return func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			r := e.request(e.sign(t, c))
			mod(r)
			return r
		}
	}
	rows := []row{
		{"ok", signed(func(map[string]any) {}), nil},
		{"ok: scheme name in any case, several spaces", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return request(e.svid.Marshal(), "wPt   "+e.sign(t, c))
		}, nil},
		{"ok: typ with the application/ prefix", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, e.svid.PrivateKey, jose.ES256, "application/wpt+jwt", c))
		}, nil},
		{"ok: aud as an array naming the target", signed(func(c map[string]any) { c["aud"] = []string{"https://else.example/", testTarget} }), nil},
		{"ok: no iat", signed(func(c map[string]any) { delete(c, "iat") }), nil},
		{"ok: no htm", signed(func(c map[string]any) { delete(c, "htm") }), nil},
		{"ok: exp within the leeway", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["exp"] = e.clock.Now().Add(-wpt.DefaultLeeway + time.Second).Unix()
			c["iat"] = e.clock.Now().Add(-time.Minute).Unix()
			return e.request(e.sign(t, c))
		}, nil},
		{"ok: unknown claims ignored (draft -01's ath)", signed(func(c map[string]any) { c["ath"] = wpt.Hash("token") }), nil},

		// The signature: by the WIT's cnf key, with its alg only.
		{"signed by another key", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, otherKey, jose.ES256, wpt.TokenType, c))
		}, wpt.ErrInvalidProof},
		{"alg none", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			token := e.sign(t, c)
			parts := strings.Split(token, ".")
			hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"wpt+jwt"}`))
			return e.request(hdr + "." + parts[1] + ".")
		}, wpt.ErrInvalidProof},
		{"alg HS256 keyed with the public key", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			pub := e.svid.PublicKey.(*ecdsa.PublicKey)
			der, err := pub.Bytes()
			require.NoError(t, err)
			return e.request(rawToken(t, der, jose.HS256, wpt.TokenType, c))
		}, wpt.ErrInvalidProof},
		{"alg other than cnf.jwk.alg", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, p384, jose.ES384, wpt.TokenType, c))
		}, wpt.ErrInvalidProof},
		{"signature tampered", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			token := e.sign(t, c)
			return e.request(token[:len(token)-4] + "AAAA")
		}, wpt.ErrInvalidProof},
		{"claims tampered after signing", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			parts := strings.Split(e.sign(t, c), ".")
			c["aud"] = testOrigin + "/admin"
			tampered := strings.Split(e.sign(t, c), ".")[1]
			return e.request(parts[0] + "." + tampered + "." + parts[2])
		}, wpt.ErrInvalidProof},
		{"JWS JSON serialization", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			parts := strings.Split(e.sign(t, c), ".")
			return e.request(`{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`)
		}, wpt.ErrInvalidProof},
		{"typ missing", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, e.svid.PrivateKey, jose.ES256, "", c))
		}, wpt.ErrInvalidProof},
		{"typ JWT", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, e.svid.PrivateKey, jose.ES256, "JWT", c))
		}, wpt.ErrInvalidProof},
		{"typ wit+jwt: a WIT is no proof", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(rawToken(t, e.svid.PrivateKey, jose.ES256, "wit+jwt", c))
		}, wpt.ErrInvalidProof},
		{"the WIT-SVID itself as the proof", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return e.request(e.svid.Marshal())
		}, wpt.ErrInvalidProof},

		// Request binding: method and target URI.
		{"wrong method", signed(func(c map[string]any) { c["htm"] = http.MethodPost }), wpt.ErrInvalidProof},
		{"method in another case", signed(func(c map[string]any) { c["htm"] = "get" }), wpt.ErrInvalidProof},
		{"htm not a string", signed(func(c map[string]any) { c["htm"] = 1 }), wpt.ErrInvalidProof},
		{"wrong path", signed(func(c map[string]any) { c["aud"] = testOrigin + "/v1/other" }), wpt.ErrInvalidProof},
		{"path prefix only", signed(func(c map[string]any) { c["aud"] = testOrigin + "/v1" }), wpt.ErrInvalidProof},
		{"aud with the query", signed(func(c map[string]any) { c["aud"] = testTarget + "?page=2" }), wpt.ErrInvalidProof},
		{"wrong host", signed(func(c map[string]any) { c["aud"] = "https://evil.example/v1/things" }), wpt.ErrInvalidProof},
		{"wrong scheme", signed(func(c map[string]any) { c["aud"] = "http://api.example.org/v1/things" }), wpt.ErrInvalidProof},
		{"aud missing", signed(func(c map[string]any) { delete(c, "aud") }), wpt.ErrInvalidProof},
		{"Host and X-Forwarded-Host name the proof's host", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			// §3.1.7: the sender chooses Host; only configured origins count.
			c["aud"] = "https://evil.example/v1/things"
			r := e.request(e.sign(t, c))
			r.Host = "evil.example"
			r.Header.Set("X-Forwarded-Host", "evil.example")
			return r
		}, wpt.ErrInvalidProof},

		// Time.
		{"expired", signed(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), wpt.ErrInvalidProof},
		{"exp missing", signed(func(c map[string]any) { delete(c, "exp") }), wpt.ErrInvalidProof},
		{"exp not a number", signed(func(c map[string]any) { c["exp"] = "tomorrow" }), wpt.ErrInvalidProof},
		{"exp too far ahead", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			delete(c, "iat")
			c["exp"] = e.clock.Now().Add(wpt.DefaultMaxLifetime + wpt.DefaultLeeway + time.Second).Unix()
			return e.request(e.sign(t, c))
		}, wpt.ErrInvalidProof},
		{"iat in the future", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["iat"] = e.clock.Now().Add(wpt.DefaultLeeway + time.Second).Unix()
			return e.request(e.sign(t, c))
		}, wpt.ErrInvalidProof},
		{"lifetime longer than allowed", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["iat"] = e.clock.Now().Add(-wpt.DefaultMaxLifetime).Unix()
			return e.request(e.sign(t, c))
		}, wpt.ErrInvalidProof},
		{"nbf in the future", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["nbf"] = e.clock.Now().Add(wpt.DefaultLeeway + time.Second).Unix()
			return e.request(e.sign(t, c))
		}, wpt.ErrInvalidProof},

		// jti.
		{"jti missing", signed(func(c map[string]any) { delete(c, "jti") }), wpt.ErrInvalidProof},
		{"jti empty", signed(func(c map[string]any) { c["jti"] = "" }), wpt.ErrInvalidProof},
		{"jti huge", signed(func(c map[string]any) { c["jti"] = strings.Repeat("j", wpt.MaxIDLength+1) }), wpt.ErrInvalidProof},

		// Binding to the WIT-SVID.
		{"wth missing", signed(func(c map[string]any) { delete(c, "wth") }), wpt.ErrInvalidProof},
		{"wth of another token", signed(func(c map[string]any) { c["wth"] = wpt.Hash("another") }), wpt.ErrInvalidProof},
		{"a WIT-SVID re-issued for the same key", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			again := e.td.svidFor(t, "/client", e.svid.PrivateKey.(*ecdsa.PrivateKey), "")
			require.NotEqual(t, again.Marshal(), e.svid.Marshal())
			return request(again.Marshal(), "WPT "+e.sign(t, c))
		}, wpt.ErrInvalidProof},
		{"another workload's WIT-SVID with this proof", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			return request(e.td.svid(t, "/other").Marshal(), "WPT "+e.sign(t, c))
		}, wpt.ErrInvalidProof},

		// The WIT-SVID itself.
		{"WIT from a trust domain without a bundle here", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			s := other.svid(t, "/client")
			c["wth"] = wpt.Hash(s.Marshal())
			return request(s.Marshal(), "WPT "+rawToken(t, s.PrivateKey, jose.ES256, wpt.TokenType, c))
		}, wpt.ErrInvalidWIT},
		{"WIT for this trust domain signed by another's authority", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			rogue, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key})
			require.NoError(t, err)
			s := (&trustDomain{td: e.td.td, authority: rogue}).svid(t, "/client")
			c["wth"] = wpt.Hash(s.Marshal())
			return request(s.Marshal(), "WPT "+rawToken(t, s.PrivateKey, jose.ES256, wpt.TokenType, c))
		}, wpt.ErrInvalidWIT},
		{"expired WIT", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			require.NoError(t, err)
			past := func() time.Time { return time.Now().Add(-3 * time.Hour) }
			old, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: e.td.key, KeyID: e.td.authority.KeyID(), Now: past})
			require.NoError(t, err)
			token, err := old.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: e.td.id("/client"), PublicKey: key.Public(), TTL: time.Hour})
			require.NoError(t, err)
			c["wth"] = wpt.Hash(token)
			return request(token, "WPT "+rawToken(t, key, jose.ES256, wpt.TokenType, c))
		}, wpt.ErrInvalidWIT},
		{"WIT missing", withRequest(func(r *http.Request) { r.Header.Del(wpt.WITHeader) }), wpt.ErrInvalidWIT},
		{"two WITs", withRequest(func(r *http.Request) { r.Header.Add(wpt.WITHeader, r.Header.Get(wpt.WITHeader)) }), wpt.ErrInvalidWIT},
		{"WIT garbage", withRequest(func(r *http.Request) { r.Header.Set(wpt.WITHeader, "not.a.token") }), wpt.ErrInvalidWIT},
		{"WIT huge", withRequest(func(r *http.Request) {
			r.Header.Set(wpt.WITHeader, strings.Repeat("A", witsvid.MaxTokenLength+1))
		}), wpt.ErrInvalidWIT},

		// The Authorization field.
		{"Authorization missing", withRequest(func(r *http.Request) { r.Header.Del("Authorization") }), wpt.ErrInvalidProof},
		{"two Authorization fields", withRequest(func(r *http.Request) { r.Header.Add("Authorization", "Bearer abc") }), wpt.ErrInvalidProof},
		{"Bearer scheme", withRequest(func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(r.Header.Get("Authorization"), "WPT "))
		}), wpt.ErrInvalidProof},
		{"DPoP scheme", withRequest(func(r *http.Request) {
			r.Header.Set("Authorization", "DPoP "+strings.TrimPrefix(r.Header.Get("Authorization"), "WPT "))
		}), wpt.ErrInvalidProof},
		{"scheme without credentials", withRequest(func(r *http.Request) { r.Header.Set("Authorization", "WPT") }), wpt.ErrInvalidProof},
		{"scheme with blank credentials", withRequest(func(r *http.Request) { r.Header.Set("Authorization", "WPT   ") }), wpt.ErrInvalidProof},
		{"credentials not a token68", withRequest(func(r *http.Request) {
			r.Header.Set("Authorization", r.Header.Get("Authorization")+" extra")
		}), wpt.ErrInvalidProof},
		{"proof huge", withRequest(func(r *http.Request) {
			r.Header.Set("Authorization", "WPT "+strings.Repeat("A", wpt.MaxTokenLength+1))
		}), wpt.ErrInvalidProof},

		// Txn-Token and tth.
		{"ok: Txn-Token bound by tth", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["tth"] = wpt.Hash("txn.token.value")
			r := e.request(e.sign(t, c))
			r.Header.Set(wpt.TxnTokenHeader, "txn.token.value")
			return r
		}, nil},
		{"ok: a 1 MiB Txn-Token bound by tth", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			big := strings.Repeat("t", 1<<20)
			c["tth"] = wpt.Hash(big)
			r := e.request(e.sign(t, c))
			r.Header.Set(wpt.TxnTokenHeader, big)
			return r
		}, nil},
		{"Txn-Token without tth", withRequest(func(r *http.Request) { r.Header.Set(wpt.TxnTokenHeader, "txn") }), wpt.ErrInvalidProof},
		{"tth of another Txn-Token", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["tth"] = wpt.Hash("txn.token.value")
			r := e.request(e.sign(t, c))
			r.Header.Set(wpt.TxnTokenHeader, "txn.token.valuf")
			return r
		}, wpt.ErrInvalidProof},
		{"tth without a Txn-Token", signed(func(c map[string]any) { c["tth"] = wpt.Hash("txn") }), wpt.ErrInvalidProof},
		{"two Txn-Token fields", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["tth"] = wpt.Hash("txn")
			r := e.request(e.sign(t, c))
			r.Header.Add(wpt.TxnTokenHeader, "txn")
			r.Header.Add(wpt.TxnTokenHeader, "txn")
			return r
		}, wpt.ErrInvalidProof},

		// oth.
		{"ok: other token bound by oth, spaces trimmed", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["oth"] = map[string]string{"x-user-token": wpt.Hash("user.token")}
			r := e.request(e.sign(t, c))
			r.Header.Set("X-User-Token", " user.token\t")
			return r
		}, nil},
		{"configured context token not covered by oth", withRequest(func(r *http.Request) { r.Header.Set("X-User-Token", "user.token") }), wpt.ErrInvalidProof},
		{"oth of another value", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["oth"] = map[string]string{"x-user-token": wpt.Hash("user.token")}
			r := e.request(e.sign(t, c))
			r.Header.Set("X-User-Token", "user.tokem")
			return r
		}, wpt.ErrInvalidProof},
		{"oth names a header the request lacks", signed(func(c map[string]any) {
			c["oth"] = map[string]string{"x-absent": wpt.Hash("v")}
		}), wpt.ErrInvalidProof},
		{"oth names a repeated header", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["oth"] = map[string]string{"x-user-token": wpt.Hash("v")}
			r := e.request(e.sign(t, c))
			r.Header.Add("X-User-Token", "v")
			r.Header.Add("X-User-Token", "v")
			return r
		}, wpt.ErrInvalidProof},
		{"oth key not in lower case", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			c["oth"] = map[string]string{"X-User-Token": wpt.Hash("v")}
			r := e.request(e.sign(t, c))
			r.Header.Set("X-User-Token", "v")
			return r
		}, wpt.ErrInvalidProof},
		{"oth not an object of strings", signed(func(c map[string]any) { c["oth"] = map[string]int{"x": 1} }), wpt.ErrInvalidProof},
		{"oth with too many entries", func(t *testing.T, e *rulesEnv, c map[string]any) *http.Request {
			oth := map[string]string{}
			for i := range wpt.MaxOtherTokens + 1 {
				oth["x-t"+strings.Repeat("a", i)] = wpt.Hash("v")
			}
			c["oth"] = oth
			return e.request(e.sign(t, c))
		}, wpt.ErrInvalidProof},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			e := newRulesEnv(t, nil)
			r := tt.build(t, e, e.claims())
			res, err := e.v.Verify(r)
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, e.td.id("/client"), res.ID)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Nil(t, res)
		})
	}
}

func TestVerifyRequestWithoutURL(t *testing.T) {
	e := newRulesEnv(t, nil)
	r := e.request(e.sign(t, e.claims()))
	r.URL = nil
	_, err := e.v.Verify(r)
	require.ErrorIs(t, err, wpt.ErrInvalidProof)
}

func TestVerifyRequireMethod(t *testing.T) {
	e := newRulesEnv(t, func(c *wpt.Config) { c.RequireMethod = true })
	c := e.claims()
	delete(c, "htm")
	_, err := e.v.Verify(e.request(e.sign(t, c)))
	require.ErrorIs(t, err, wpt.ErrInvalidProof)
	_, err = e.v.Verify(e.request(e.sign(t, e.claims())))
	require.NoError(t, err)
}

func TestVerifyRefusesReplay(t *testing.T) {
	e := newRulesEnv(t, nil)
	token, err := wpt.Mint(e.svid, wpt.MintParams{Audience: testTarget, Method: http.MethodGet, Now: e.clock.Now()})
	require.NoError(t, err)
	_, err = e.v.Verify(e.request(token))
	require.NoError(t, err)
	// The same proof again, even with another Host: refused as a replay.
	r := e.request(token)
	r.Host = "other.example"
	_, err = e.v.Verify(r)
	require.ErrorIs(t, err, wpt.ErrReplay)
	// Once it has expired the cache may forget it: it is refused as stale.
	e.clock.Add(wpt.DefaultLifetime + wpt.DefaultLeeway)
	_, err = e.v.Verify(e.request(token))
	require.ErrorIs(t, err, wpt.ErrInvalidProof)
	require.NotErrorIs(t, err, wpt.ErrReplay)
}

func TestVerifyReplayCacheIsBounded(t *testing.T) {
	e := newRulesEnv(t, func(c *wpt.Config) { c.ReplayCacheSize = 3 })
	mint := func() *http.Request {
		token, err := wpt.Mint(e.svid, wpt.MintParams{Audience: testTarget, Lifetime: 10 * time.Second, Now: e.clock.Now()})
		require.NoError(t, err)
		return e.request(token)
	}
	for range 3 {
		_, err := e.v.Verify(mint())
		require.NoError(t, err)
	}
	// Full of live proofs: a fourth is refused, not an earlier one forgotten.
	fourth := mint()
	_, err := e.v.Verify(fourth)
	require.ErrorIs(t, err, wpt.ErrReplayCacheFull)
	// When the first three can no longer be accepted, their place is free.
	e.clock.Add(10*time.Second + wpt.DefaultLeeway)
	for range 3 {
		_, err := e.v.Verify(mint())
		require.NoError(t, err)
	}
	_, err = e.v.Verify(mint())
	require.ErrorIs(t, err, wpt.ErrReplayCacheFull)
}

func TestVerifyAuthorize(t *testing.T) {
	e := newRulesEnv(t, func(c *wpt.Config) {
		c.Authorize = spiffeid.MatchID(spiffeid.RequireFromString("spiffe://example.org/server"))
	})
	_, err := e.v.Verify(e.request(e.sign(t, e.claims())))
	require.ErrorIs(t, err, wpt.ErrUnauthorized)
}

func TestVerifyOrigins(t *testing.T) {
	e := newRulesEnv(t, func(c *wpt.Config) {
		c.Origins = []string{"https://API.Example.org:443/", "http://internal.example:8080"}
	})
	for _, aud := range []string{testTarget, "http://internal.example:8080/v1/things"} {
		c := e.claims()
		c["aud"] = aud
		_, err := e.v.Verify(e.request(e.sign(t, c)))
		require.NoError(t, err, aud)
	}
	c := e.claims()
	c["aud"] = "http://internal.example/v1/things"
	_, err := e.v.Verify(e.request(e.sign(t, c)))
	require.ErrorIs(t, err, wpt.ErrInvalidProof)
}

func TestVerifyAlgorithms(t *testing.T) {
	// The proof's alg is cnf.jwk.alg, whatever the key could also sign.
	e := newRulesEnv(t, nil)
	key := rsaKey(t)
	svid := e.td.svidFor(t, "/rsa", key, "PS256")
	c := e.claims()
	c["wth"] = wpt.Hash(svid.Marshal())
	_, err := e.v.Verify(request(svid.Marshal(), "WPT "+rawToken(t, key, jose.RS256, wpt.TokenType, c)))
	require.ErrorIs(t, err, wpt.ErrInvalidProof, "RS256 with a PS256 cnf key")
	for _, tc := range []struct {
		alg string
		key any
	}{{"PS256", key}, {"RS256", key}, {"ES384", p384Key(t)}} {
		svid := e.td.svidFor(t, "/"+tc.alg, tc.key.(crypto.Signer), tc.alg)
		token, err := wpt.Mint(svid, wpt.MintParams{Audience: testTarget, Now: e.clock.Now()})
		require.NoError(t, err)
		res, err := e.v.Verify(request(svid.Marshal(), "WPT "+token))
		require.NoError(t, err, tc.alg)
		assert.Equal(t, tc.alg, res.WIT.KeyAlgorithm())
	}
}

func TestVerifyToken(t *testing.T) {
	e := newRulesEnv(t, nil)
	token, err := wpt.Mint(e.svid, wpt.MintParams{
		Audience: "urn:example:queue", Method: "PUBLISH", TxnToken: "txn",
		OtherTokens: map[string]string{"X-User-Token": "user"}, Now: e.clock.Now(),
	})
	require.NoError(t, err)
	b := wpt.Binding{Audience: "urn:example:queue", Method: "PUBLISH", TxnToken: "txn", OtherTokens: map[string]string{"x-user-token": "user"}}

	for name, bad := range map[string]wpt.Binding{
		"audience":        {Audience: "urn:example:other", Method: "PUBLISH", TxnToken: "txn", OtherTokens: b.OtherTokens},
		"method":          {Audience: b.Audience, Method: "GET", TxnToken: "txn", OtherTokens: b.OtherTokens},
		"txn token":       {Audience: b.Audience, Method: "PUBLISH", TxnToken: "other", OtherTokens: b.OtherTokens},
		"no txn token":    {Audience: b.Audience, Method: "PUBLISH", OtherTokens: b.OtherTokens},
		"other token":     {Audience: b.Audience, Method: "PUBLISH", TxnToken: "txn", OtherTokens: map[string]string{"X-User-Token": "else"}},
		"uncovered token": {Audience: b.Audience, Method: "PUBLISH", TxnToken: "txn", OtherTokens: map[string]string{"X-User-Token": "user", "X-More": "m"}},
	} {
		_, err := e.v.VerifyToken(e.svid.Marshal(), token, bad)
		require.ErrorIs(t, err, wpt.ErrInvalidProof, name)
	}
	res, err := e.v.VerifyToken(e.svid.Marshal(), token, b)
	require.NoError(t, err)
	assert.Equal(t, wpt.Hash("txn"), res.Claims.TxnTokenHash)
	assert.Equal(t, map[string]string{"x-user-token": wpt.Hash("user")}, res.Claims.OtherTokenHashes)
	_, err = e.v.VerifyToken(e.svid.Marshal(), token, b)
	require.ErrorIs(t, err, wpt.ErrReplay)
	_, err = e.v.VerifyToken(e.svid.Marshal(), token, wpt.Binding{})
	require.Error(t, err)
}

func TestNewVerifierErrors(t *testing.T) {
	bundles := witbundle.NewSet()
	for name, cfg := range map[string]wpt.Config{
		"no bundles":        {Origins: []string{testOrigin}},
		"no origins":        {Bundles: bundles},
		"origin with path":  {Bundles: bundles, Origins: []string{testOrigin + "/api"}},
		"origin with query": {Bundles: bundles, Origins: []string{testOrigin + "?a=b"}},
		"origin not http":   {Bundles: bundles, Origins: []string{"ftp://example.org"}},
		"origin no host":    {Bundles: bundles, Origins: []string{"https://"}},
		"origin with user":  {Bundles: bundles, Origins: []string{"https://u@example.org"}},
		"origin unparsable": {Bundles: bundles, Origins: []string{"https://%zz"}},
		"empty header":      {Bundles: bundles, Origins: []string{testOrigin}, OtherTokenHeaders: []string{""}},
		"negative leeway":   {Bundles: bundles, Origins: []string{testOrigin}, Leeway: -1},
		"negative lifetime": {Bundles: bundles, Origins: []string{testOrigin}, MaxLifetime: -1},
		"negative cache":    {Bundles: bundles, Origins: []string{testOrigin}, ReplayCacheSize: -1},
	} {
		_, err := wpt.NewVerifier(cfg)
		require.Error(t, err, name)
	}
}

func TestTargetURI(t *testing.T) {
	for in, want := range map[string]string{
		"https://API.example.org:443/a/b?q=1#f": "https://api.example.org/a/b",
		"http://example.org:80":                 "http://example.org/",
		"http://example.org:8080/%2Fx":          "http://example.org:8080/%2Fx",
		"https://example.org:8443/":             "https://example.org:8443/",
	} {
		u, err := url.Parse(in)
		require.NoError(t, err)
		assert.Equal(t, want, wpt.TargetURI(u), in)
	}
}

func TestMintErrors(t *testing.T) {
	d := newTrustDomain(t, "example.org")
	svid := d.svid(t, "/a")
	noKey := *svid
	noKey.PrivateKey = nil
	otherKey := *svid
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKey.PrivateKey = k
	bare := &witsvid.SVID{ID: svid.ID, PublicKey: k.Public(), PrivateKey: k}

	for name, tc := range map[string]struct {
		svid *witsvid.SVID
		p    wpt.MintParams
	}{
		"nil svid":           {nil, wpt.MintParams{Audience: testTarget}},
		"no private key":     {&noKey, wpt.MintParams{Audience: testTarget}},
		"key of another cnf": {&otherKey, wpt.MintParams{Audience: testTarget}},
		"no cnf alg":         {bare, wpt.MintParams{Audience: testTarget}},
		"no audience":        {svid, wpt.MintParams{}},
		"negative lifetime":  {svid, wpt.MintParams{Audience: testTarget, Lifetime: -time.Second}},
		"empty header name":  {svid, wpt.MintParams{Audience: testTarget, OtherTokens: map[string]string{"": "v"}}},
		"repeated header":    {svid, wpt.MintParams{Audience: testTarget, OtherTokens: map[string]string{"X-A": "v", "x-a": "w"}}},
		"too many tokens": {svid, wpt.MintParams{Audience: testTarget, OtherTokens: func() map[string]string {
			m := map[string]string{}
			for i := range wpt.MaxOtherTokens + 1 {
				m["x-"+strings.Repeat("a", i+1)] = "v"
			}
			return m
		}()}},
	} {
		_, err := wpt.Mint(tc.svid, tc.p)
		require.Error(t, err, name)
	}
}

// opaqueSigner hides the key type, as an HSM or KMS signer does.
type opaqueSigner struct{ crypto.Signer }

func TestMintWithOpaqueSigner(t *testing.T) {
	e := newRulesEnv(t, nil)
	svid := *e.svid
	svid.PrivateKey = opaqueSigner{e.svid.PrivateKey.(crypto.Signer)}
	token, err := wpt.Mint(&svid, wpt.MintParams{Audience: testTarget, Now: e.clock.Now()})
	require.NoError(t, err)
	_, err = e.v.Verify(e.request(token))
	require.NoError(t, err)
}

func p384Key(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	return k
}
