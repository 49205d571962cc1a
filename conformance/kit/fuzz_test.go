package kit_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

// FuzzParseX509SVIDPEM feeds any file to the X509-SVID reader and, when it
// parses, to the X509 checks: an error, never a panic.
func FuzzParseX509SVIDPEM(f *testing.F) {
	root := testca.New(f, exampleTD)
	chain, key := root.NewIntermediate(f).NewLeaf(f, workload)
	var file []byte
	for _, c := range chain {
		file = append(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	f.Add(append(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(f, key)})...))
	f.Add(file)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	bundles := map[string][]*x509.Certificate{"example.org": {root.Cert()}}
	f.Fuzz(func(t *testing.T, data []byte) {
		chain, key, err := kit.ParseX509SVIDPEM(data)
		if err != nil {
			return
		}
		r := kit.NewReport(kit.ModeX509, "fuzz")
		r.CheckX509SVID(kit.X509SVID{Chain: chain, Key: key, Bundles: bundles}, time.Now())
		if len(r.Results) == 0 {
			t.Fatal("no results")
		}
	})
}

// FuzzCheckBundle feeds any document to the bundle checks and, as the
// later version, to the sequence check.
func FuzzCheckBundle(f *testing.F) {
	doc, err := os.ReadFile("../crossverify/testdata/bundle-section-f.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add([]byte(`{"keys":[{"use":"x509-svid","kty":"EC","x5c":["AAAA"]},{"use":"wit-svid"}],"spiffe_sequence":1}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := kit.NewReport(kit.ModeBundle, "fuzz")
		r.CheckBundle("bundle", data)
		r.CheckBundleUpdate("bundle", doc, data)
		r.CheckJWTKeySet("jwt bundle", data)
		if _, err := kit.ParseJWKSet(data); err != nil && len(r.Results) == 0 {
			t.Fatal("no results")
		}
		jwt, errJWT := kit.ParseJWKSet(data)
		wit, errWIT := kit.ParseWITKeySet(data)
		if (errJWT == nil) != (errWIT == nil) {
			t.Fatalf("one reader of JWK Sets failed, the other not: %v, %v", errJWT, errWIT)
		}
		for _, k := range append(jwt, wit...) {
			if !k.Valid() {
				t.Fatal("an invalid key kept")
			}
		}
	})
}

// FuzzCheckJWTSVID feeds any token to the JWT checks.
func FuzzCheckJWTSVID(f *testing.F) {
	key := testca.NewECKey(f)
	keys := map[string][]jose.JSONWebKey{"example.org": {{Key: key.Public(), KeyID: "k1"}}}
	f.Add(testca.SignJWT(f, key, map[string]any{"alg": "ES256", "kid": "k1"}, map[string]any{"sub": "spiffe://example.org/w", "aud": "svc", "exp": 2e9}))
	f.Add(testca.SignJWT(f, nil, map[string]any{"alg": "none"}, map[string]any{"sub": 1, "aud": []any{1}, "exp": "x"}))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		r := kit.NewReport(kit.ModeJWT, "fuzz")
		r.CheckJWTSVID(kit.JWTSVID{Token: token, Keys: keys, Audience: "svc"}, time.Now())
		if len(r.Results) == 0 {
			t.Fatal("no results")
		}
	})
}

// FuzzCheckWITSVID feeds any token, private key and WIT bundle to the WIT
// checks: verdicts, never a panic.
func FuzzCheckWITSVID(f *testing.F) {
	signer, workloadKey := testca.NewECKey(f), testca.NewECKey(f)
	cnf, err := jose.JSONWebKey{Key: workloadKey.Public(), Algorithm: "ES256"}.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	private, err := jose.JSONWebKey{Key: workloadKey, Algorithm: "ES256"}.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: signer.Public(), KeyID: "w1", Use: "wit-svid"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(testca.SignJWT(f, signer, map[string]any{"alg": "ES256", "kid": "w1", "typ": "wit+jwt"},
		[]byte(`{"sub":"spiffe://example.org/w","exp":2e9,"nbf":1,"cnf":{"jwk":`+string(cnf)+`}}`)), string(private), set)
	f.Add(testca.SignJWT(f, nil, map[string]any{"alg": "none", "typ": 1}, map[string]any{"sub": 1, "aud": []any{1}, "exp": "x", "iss": "https://x", "cnf": map[string]any{"jwk": map[string]any{"kty": "oct", "k": "AA"}}}),
		`{"kty":"EC"}`, []byte(`{"keys":[{"kid":"w1"},{"kid":"w1","use":"x509-svid","x5c":[]},1]}`))
	f.Add("a.b.c", "", []byte(`{}`))
	f.Fuzz(func(t *testing.T, token, key string, bundle []byte) {
		r := kit.NewReport(kit.ModeWorkload, "fuzz")
		keys := map[string][]jose.JSONWebKey{"example.org": r.CheckWITKeySet("bundle", bundle)}
		n := len(r.Results)
		r.CheckWITSVID(kit.WITSVID{Token: token, Key: key, Keys: keys}, time.Now())
		if len(r.Results) == n {
			t.Fatal("no verdict on a token")
		}
	})
}
