package crossverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	gsjwtbundle "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	gsspiffebundle "github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	gswitbundle "github.com/spiffe/go-spiffe/v2/exp/bundle/witbundle"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	exampleTD   = spiffeid.RequireTrustDomainFromString("example.org")
	gsExampleTD = gsid.RequireTrustDomainFromString("example.org")
)

// keysEqual compares two key maps with the keys' own Equal methods.
func keysEqual(t *testing.T, want, got map[string]crypto.PublicKey, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for kid, w := range want {
		g, ok := got[kid]
		if !assert.True(t, ok, "%s: kid %q missing", what, kid) {
			continue
		}
		eq, ok := w.(interface{ Equal(crypto.PublicKey) bool })
		require.True(t, ok, "%s: %T has no Equal", what, w)
		assert.True(t, eq.Equal(g), "%s: kid %q differs", what, kid)
	}
}

// assertSameSPIFFEBundle checks that go-spiffe's and our bundle hold the same
// authorities, sequence number and refresh hint.
func assertSameSPIFFEBundle(t *testing.T, gs *gsspiffebundle.Bundle, ours *spiffebundle.Bundle) {
	t.Helper()
	assert.Equal(t, gs.TrustDomain().Name(), ours.TrustDomain().Name())
	assert.Equal(t, rawCerts(gs.X509Authorities()), rawCerts(ours.X509Authorities()))
	keysEqual(t, gs.JWTAuthorities(), ours.JWTAuthorities(), "JWT authorities")
	keysEqual(t, gs.WITAuthorities(), ours.WITAuthorities(), "WIT authorities")
	gsSeq, gsOK := gs.SequenceNumber()
	seq, ok := ours.SequenceNumber()
	assert.Equal(t, gsOK, ok, "sequence number presence")
	assert.Equal(t, gsSeq, seq, "sequence number")
	gsHint, gsOK := gs.RefreshHint()
	hint, ok := ours.RefreshHint()
	assert.Equal(t, gsOK, ok, "refresh hint presence")
	assert.Equal(t, gsHint, hint, "refresh hint")
}

// TestSectionFExampleDocument parses the example document of bundle.md
// section F with both libraries.
func TestSectionFExampleDocument(t *testing.T) {
	doc, err := os.ReadFile("testdata/bundle-section-f.json")
	require.NoError(t, err)
	gs, err := gsspiffebundle.Parse(gsExampleTD, doc)
	require.NoError(t, err)
	ours, err := spiffebundle.Parse(exampleTD, doc)
	require.NoError(t, err)

	assert.Len(t, ours.X509Authorities(), 1)
	assert.Len(t, ours.JWTAuthorities(), 1)
	assert.True(t, ours.HasJWTAuthority("jwt-2026-11-a"))
	seq, ok := ours.SequenceNumber()
	assert.True(t, ok)
	assert.Equal(t, uint64(42), seq)
	hint, ok := ours.RefreshHint()
	assert.True(t, ok)
	assert.Equal(t, 300*time.Second, hint)
	assertSameSPIFFEBundle(t, gs, ours)

	// Each library re-reads what the other writes from this document.
	gsDoc, err := gs.Marshal()
	require.NoError(t, err)
	fromGS, err := spiffebundle.Parse(exampleTD, gsDoc)
	require.NoError(t, err)
	assertSameSPIFFEBundle(t, gs, fromGS)
	ourDoc, err := ours.Marshal()
	require.NoError(t, err)
	fromOurs, err := gsspiffebundle.Parse(gsExampleTD, ourDoc)
	require.NoError(t, err)
	assertSameSPIFFEBundle(t, fromOurs, ours)
}

type authorities struct {
	x509 []*x509.Certificate
	jwt  map[string]crypto.PublicKey
	wit  map[string]crypto.PublicKey
}

func newAuthorities(t *testing.T) authorities {
	t.Helper()
	ctx := context.Background()
	var roots []*x509.Certificate
	for range 2 {
		root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: newECKey(t), TrustDomain: exampleTD})
		require.NoError(t, err)
		roots = append(roots, root)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	return authorities{
		x509: roots,
		jwt:  map[string]crypto.PublicKey{"jwt-ec": newECKey(t).Public(), "jwt-rsa": rsaKey.Public(), "jwt-p384": p384.Public()},
		wit:  map[string]crypto.PublicKey{"wit-ec": newECKey(t).Public()},
	}
}

// TestSPIFFEBundleRoundTrips marshals full bundles (X.509, JWT and WIT
// authorities, sequence number, refresh hint) with each library and parses
// them with the other.
func TestSPIFFEBundleRoundTrips(t *testing.T) {
	a := newAuthorities(t)

	ours := spiffebundle.New(exampleTD)
	ours.SetX509Authorities(a.x509)
	ours.SetJWTAuthorities(a.jwt)
	ours.SetWITAuthorities(a.wit)
	ours.SetSequenceNumber(7)
	ours.SetRefreshHint(5 * time.Minute)

	gs := gsspiffebundle.New(gsExampleTD)
	gs.SetX509Authorities(a.x509)
	gs.SetJWTAuthorities(a.jwt)
	gs.SetWITAuthorities(a.wit)
	gs.SetSequenceNumber(7)
	gs.SetRefreshHint(5 * time.Minute)
	assertSameSPIFFEBundle(t, gs, ours)

	ourDoc, err := ours.Marshal()
	require.NoError(t, err)
	gsFromOurs, err := gsspiffebundle.Parse(gsExampleTD, ourDoc)
	require.NoError(t, err, "go-spiffe parses our document")
	assertSameSPIFFEBundle(t, gsFromOurs, ours)

	gsDoc, err := gs.Marshal()
	require.NoError(t, err)
	oursFromGS, err := spiffebundle.Parse(exampleTD, gsDoc)
	require.NoError(t, err, "we parse go-spiffe's document")
	assertSameSPIFFEBundle(t, gs, oursFromGS)

	// Same content, same JSON, up to member order and the order of JWT
	// keys (go-spiffe writes those in map iteration order).
	assert.Equal(t, canonicalKeys(t, gsDoc), canonicalKeys(t, ourDoc))

	// Without sequence number and refresh hint.
	ours.ClearSequenceNumber()
	ours.ClearRefreshHint()
	ourDoc, err = ours.Marshal()
	require.NoError(t, err)
	gsFromOurs, err = gsspiffebundle.Parse(gsExampleTD, ourDoc)
	require.NoError(t, err)
	assertSameSPIFFEBundle(t, gsFromOurs, ours)

	// An empty bundle (Bundle rule 7: keys MAY be empty).
	empty, err := spiffebundle.New(exampleTD).Marshal()
	require.NoError(t, err)
	gsEmpty, err := gsspiffebundle.Parse(gsExampleTD, empty)
	require.NoError(t, err)
	assert.True(t, gsEmpty.Empty())
}

// canonicalKeys returns a document's top-level members with the "keys" array
// re-encoded and sorted, so documents differing only in key order compare equal.
func canonicalKeys(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal(doc, &d))
	keys, _ := d["keys"].([]any)
	enc := make([]string, len(keys))
	for i, k := range keys {
		b, err := json.Marshal(k)
		require.NoError(t, err)
		enc[i] = string(b)
	}
	slices.Sort(enc)
	d["keys"] = enc
	return d
}

func TestX509BundleRoundTrips(t *testing.T) {
	a := newAuthorities(t)
	ours := x509bundle.FromX509Authorities(exampleTD, a.x509)
	gs := gsx509bundle.FromX509Authorities(gsExampleTD, a.x509)

	ourPEM, err := ours.Marshal()
	require.NoError(t, err)
	gsPEM, err := gs.Marshal()
	require.NoError(t, err)
	assert.Equal(t, string(gsPEM), string(ourPEM))

	gsFromOurs, err := gsx509bundle.Parse(gsExampleTD, ourPEM)
	require.NoError(t, err)
	assert.Equal(t, rawCerts(a.x509), rawCerts(gsFromOurs.X509Authorities()))
	oursFromGS, err := x509bundle.Parse(exampleTD, gsPEM)
	require.NoError(t, err)
	assert.True(t, ours.Equal(oursFromGS))

	der := concatDER(a.x509)
	gsRaw, err := gsx509bundle.ParseRaw(gsExampleTD, der)
	require.NoError(t, err)
	oursRaw, err := x509bundle.ParseRaw(exampleTD, der)
	require.NoError(t, err)
	assert.Equal(t, rawCerts(gsRaw.X509Authorities()), rawCerts(oursRaw.X509Authorities()))
}

func TestJWTBundleRoundTrips(t *testing.T) {
	a := newAuthorities(t)
	ours := jwtbundle.FromJWTAuthorities(exampleTD, a.jwt)
	gs := gsjwtbundle.FromJWTAuthorities(gsExampleTD, a.jwt)

	ourDoc, err := ours.Marshal()
	require.NoError(t, err)
	gsDoc, err := gs.Marshal()
	require.NoError(t, err)

	gsFromOurs, err := gsjwtbundle.Parse(gsExampleTD, ourDoc)
	require.NoError(t, err)
	keysEqual(t, a.jwt, gsFromOurs.JWTAuthorities(), "go-spiffe from ours")
	oursFromGS, err := jwtbundle.Parse(exampleTD, gsDoc)
	require.NoError(t, err)
	keysEqual(t, a.jwt, oursFromGS.JWTAuthorities(), "ours from go-spiffe")
	assert.True(t, ours.Equal(oursFromGS))

	// A Workload API JWT bundle: a plain JWK Set without "use" (JWT rule 14).
	var set map[string][]map[string]any
	require.NoError(t, json.Unmarshal(gsDoc, &set))
	for _, k := range set["keys"] {
		delete(k, "use")
	}
	plain, err := json.Marshal(set)
	require.NoError(t, err)
	oursPlain, err := jwtbundle.Parse(exampleTD, plain)
	require.NoError(t, err)
	keysEqual(t, a.jwt, oursPlain.JWTAuthorities(), "plain JWK Set")
}

func TestWITBundleRoundTrips(t *testing.T) {
	a := newAuthorities(t)
	ourDoc, err := witbundle.FromWITAuthorities(exampleTD, a.wit).Marshal()
	require.NoError(t, err)
	gsDoc, err := gswitbundle.FromWITAuthorities(gsExampleTD, a.wit).Marshal()
	require.NoError(t, err)

	gsFromOurs, err := gswitbundle.Parse(gsExampleTD, ourDoc)
	require.NoError(t, err)
	keysEqual(t, a.wit, gsFromOurs.WITAuthorities(), "go-spiffe from ours")
	oursFromGS, err := witbundle.Parse(exampleTD, gsDoc)
	require.NoError(t, err)
	keysEqual(t, a.wit, oursFromGS.WITAuthorities(), "ours from go-spiffe")
}

// TestSPIFFEBundleParseTable runs bundle.md section E through both parsers.
// The "ours" column is the documented behaviour of spiffebundle.Parse.
func TestSPIFFEBundleParseTable(t *testing.T) {
	doc, err := os.ReadFile("testdata/bundle-section-f.json")
	require.NoError(t, err)
	var base struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(doc, &base))
	x509Key, jwtKey := base.Keys[0], base.Keys[1]
	clone := func(k map[string]any, mod func(map[string]any)) map[string]any {
		out := make(map[string]any, len(k))
		for n, v := range k {
			out[n] = v
		}
		if mod != nil {
			mod(out)
		}
		return out
	}
	document := func(top map[string]any, keys ...map[string]any) string {
		d := map[string]any{}
		for n, v := range top {
			d[n] = v
		}
		if keys != nil {
			d["keys"] = keys
		}
		b, err := json.Marshal(d)
		require.NoError(t, err)
		return string(b)
	}
	other := newAuthorities(t).x509[0]
	otherB64 := base64.StdEncoding.EncodeToString(other.Raw)

	for _, tc := range []struct {
		name     string
		doc      string
		ours, gs verdict
	}{
		{"keys absent", `{"spiffe_sequence":1}`, reject, reject},                                                   // Bundle rule 7
		{"keys empty", `{"keys":[]}`, accept, accept},                                                              // Bundle rule 7
		{"unknown use", document(nil, clone(jwtKey, func(k map[string]any) { k["use"] = "foo" })), accept, accept}, // Bundle rule 13
		{"missing use", document(nil, clone(jwtKey, func(k map[string]any) { delete(k, "use") })), accept, accept},
		{"use JWT-SVID uppercase", document(nil, clone(jwtKey, func(k map[string]any) { k["use"] = "JWT-SVID" })), accept, accept},
		{"unknown kty", document(nil, x509Key, clone(jwtKey, func(k map[string]any) { k["kty"] = "XYZ" })), accept, reject}, // Bundle rule 12
		{"missing kty", document(nil, x509Key, clone(jwtKey, func(k map[string]any) { delete(k, "kty") })), accept, reject},
		{"x509-svid with kid", document(nil, clone(x509Key, func(k map[string]any) { k["kid"] = "x" })), accept, accept}, // Bundle rule 15
		{"x509-svid without x5c", document(nil, jwtKey, clone(x509Key, func(k map[string]any) { delete(k, "x5c") })), accept, reject},
		{"x509-svid with empty x5c", document(nil, jwtKey, clone(x509Key, func(k map[string]any) { k["x5c"] = []string{} })), accept, reject},
		{"x509-svid with two x5c", document(nil, clone(x509Key, func(k map[string]any) {
			k["x5c"] = []any{k["x5c"].([]any)[0], otherB64}
		})), accept, reject},
		{"x509-svid key params do not match x5c", document(nil, clone(x509Key, func(k map[string]any) {
			k["x5c"] = []string{otherB64}
		})), reject, reject},
		{"jwt-svid without kid", document(nil, clone(jwtKey, func(k map[string]any) { delete(k, "kid") })), reject, reject}, // Bundle rule 16
		{"jwt-svid with empty kid", document(nil, clone(jwtKey, func(k map[string]any) { k["kid"] = "" })), reject, reject},
		{"duplicate jwt-svid kid", document(nil, jwtKey, jwtKey), reject, accept},                               // Bundle rule 16
		{"spiffe_sequence -1", document(map[string]any{"spiffe_sequence": -1}, jwtKey), reject, reject},         // Bundle rule 8
		{"spiffe_refresh_hint -5", document(map[string]any{"spiffe_refresh_hint": -5}, jwtKey), reject, accept}, // Bundle rule 9
		{"spiffe_refresh_hint 1.5", document(map[string]any{"spiffe_refresh_hint": 1.5}, jwtKey), reject, reject},
		{"spiffe_refresh_hint string", document(map[string]any{"spiffe_refresh_hint": "300"}, jwtKey), reject, reject},
		{"unknown top-level member", document(map[string]any{"x-extra": true}, jwtKey), accept, accept},                           // Bundle rule 10
		{"wit-svid key with kid", document(nil, clone(jwtKey, func(k map[string]any) { k["use"] = "wit-svid" })), accept, accept}, // Bundle rule 17
		{"private key member d", document(nil, clone(jwtKey, func(k map[string]any) { k["d"] = "AAAA" })), reject, notApplicable}, // Bundle rule 14 (go-spiffe: not measured)
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, ourErr := spiffebundle.Parse(exampleTD, []byte(tc.doc))
			gs, gsErr := gsspiffebundle.Parse(gsExampleTD, []byte(tc.doc))
			assert.Equal(t, tc.ours, verdictOf(ourErr), "spiffekit: %v", ourErr)
			if tc.gs != notApplicable {
				assert.Equal(t, tc.gs, verdictOf(gsErr), "go-spiffe: %v", gsErr)
			}
			if ourErr != nil {
				assert.True(t, strings.HasPrefix(ourErr.Error(), "spiffebundle: "), "error prefix: %v", ourErr)
			}
			if ourErr == nil && gsErr == nil {
				assertSameSPIFFEBundle(t, gs, ours)
			}
		})
	}
}
