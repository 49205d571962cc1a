package kit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzOIDCDocuments feeds any discovery document and any JWK Set to the
// oidc mode's checks: verdicts, never a panic.
func FuzzOIDCDocuments(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://oidc.example.org","jwks_uri":"https://oidc.example.org/keys","id_token_signing_alg_values_supported":["RS256"],"response_types_supported":["id_token"],"subject_types_supported":["public"]}`),
		[]byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`))
	f.Add([]byte(`{"issuer":"http://127.0.0.1:1?q","jwks_uri":"http://x/keys","id_token_signing_alg_values_supported":["none"],"subject_types_supported":[1]}`),
		[]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","alg":"ES256"},{},1,{"kty":"oct","k":"AA","kid":"a","use":"enc"}]}`))
	f.Fuzz(func(t *testing.T, doc, jwks []byte) {
		o := &oidcCheck{r: NewReport(ModeOIDC, "fuzz")}
		var m map[string]json.RawMessage
		if json.Unmarshal(doc, &m) == nil {
			o.checkDiscovery(m, "https://oidc.example.org")
			if len(o.r.Results) == 0 {
				t.Fatal("no verdict on a discovery document")
			}
		}
		n := len(o.r.Results)
		keys := o.checkJWKS("JWKS", "fuzz", 200, jwks)
		if len(o.r.Results) == n {
			t.Fatal("no verdict on a JWK Set")
		}
		if !sameKeySet(keys, keys) {
			t.Fatal("a key set differs from itself")
		}
	})
}

// TestOIDCDocumentRules checks the document and key rules on inputs no
// live test serves: URLs off loopback, RSA and P-384 keys.
func TestOIDCDocumentRules(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jose.JSONWebKey{Key: k.Public(), KeyID: "a", Algorithm: "ES384"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	p384 := string(raw)
	base := `"id_token_signing_alg_values_supported":["RS256"],"response_types_supported":["id_token"],"subject_types_supported":["public"]`
	for _, tc := range []struct {
		doc, jwks string
		want      []string
	}{
		{`{"issuer":"https://oidc.example.org","jwks_uri":"https://oidc.example.org/keys",` + base + `}`, `{"keys":[]}`, nil},
		{`{"issuer":"https://oidc.example.org","jwks_uri":"http://oidc.example.org/keys",` + base + `}`, `{"keys":[]}`, []string{"OIDC rule 4"}},
		{`{"issuer":"https://oidc.example.org","jwks_uri":"/keys",` + base + `}`, `{"keys":[]}`, []string{"OIDC rule 4"}},
		{`{"issuer":"https://oidc.example.org","jwks_uri":"https://oidc.example.org/keys",` + base + `}`, `{"keys":{}}`, []string{"OIDC rule 8"}},
		{`{"issuer":"https://oidc.example.org","jwks_uri":"https://oidc.example.org/keys",` + base + `}`,
			`{"keys":[` + p384 + `,` +
				`{"kty":"RSA","kid":"b","alg":"ES256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"},` +
				`{"kty":"OKP","crv":"Ed25519","kid":"c","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, []string{"OIDC rule 10"}},
	} {
		o := &oidcCheck{r: NewReport(ModeOIDC, "test")}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.doc), &m); err != nil {
			t.Fatal(err)
		}
		o.checkDiscovery(m, "https://oidc.example.org")
		o.checkJWKS("JWKS", "test", 200, []byte(tc.jwks))
		got := o.r.FailedRules()
		if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) || (len(got) > 1 && got[1] != tc.want[1]) {
			var b strings.Builder
			_ = o.r.WriteText(&b)
			t.Errorf("%s: failed %v, want %v\n%s", tc.doc, got, tc.want, b.String())
		}
	}
	if isLoopback("oidc.example.org") || !isLoopback("localhost") || !isLoopback("::1") {
		t.Error("isLoopback")
	}
}
