package issuer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// downWITSigner signs nothing, WIT-SVIDs included: its server is away.
type downWITSigner struct{ downSigner }

func (downWITSigner) SignWITSVID(context.Context, issuer.WITSVIDRequest) (string, error) {
	return "", endpoint.ErrUnavailable
}

// witSavedFrom runs an issuer whose CA keeps a WIT key, with an entry of
// ours whose WIT-SVID a caller fetched, and returns it with what
// WITSVIDs returns then, and the token served.
func witSavedFrom(t *testing.T) (*env, []issuer.SavedWITSVID, string) {
	t.Helper()
	t.Helper()
	e := newWITEnv(t, false, issuer.Config{}, nil)
	e.register(t, registry.Entry{SPIFFEID: webID})
	before := e.iss.WITSVIDsVersion()
	svid, err := e.client(t).FetchWITSVID(t.Context(), "")
	require.NoError(t, err)
	saved, v := e.iss.WITSVIDs()
	require.Len(t, saved, 1)
	assert.NotEqual(t, before, v)
	assert.Equal(t, svid.Marshal(), saved[0].Token)
	return e, saved, svid.Marshal()
}

// witRestoredIssuer is a new issuer over the registry and CA of from,
// whose Signer is away, holding the X509-SVIDs from held (a caller gets
// its WIT-SVIDs with them), not running; now, when not nil, is its clock.
func witRestoredIssuer(t *testing.T, from *env, now func() time.Time) *env {
	t.Helper()
	e := newIdleEnv(t, issuer.Config{Registry: from.store.(*memstore.Store), Trust: issuer.TrustFromAuthority(from.ca),
		Signer: downWITSigner{}, Now: now})
	svids, _ := from.iss.X509SVIDs()
	_, err := e.iss.Restore(svids)
	require.NoError(t, err)
	return e
}

// servedWITs returns the tokens of the WIT-SVIDs the issuer of e serves
// the test process, or the error of SubscribeWIT.
func servedWITs(t *testing.T, e *env) ([]string, error) {
	t.Helper()
	sub, err := e.iss.SubscribeWIT(t.Context(), self())
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	var out []string
	snap := sub.Snapshot()
	if snap == nil {
		return nil, nil
	}
	for _, w := range snap.WITSVIDs {
		out = append(out, w.Token)
	}
	return out, nil
}

// Property: an issuer given the WIT-SVIDs another held serves them as they
// are with its signer away, each once; those expired, of an entry gone or
// changed, or signed by a key that left the bundle, are left out and
// counted, and never served.
func TestRestoreWITSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	from, saved, token := witSavedFrom(t)

	to := witRestoredIssuer(t, from, nil)
	before := to.iss.WITSVIDsVersion()
	res, err := to.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Restored: 1}, res)
	assert.NotEqual(t, before, to.iss.WITSVIDsVersion())
	served, err := servedWITs(t, to)
	require.NoError(t, err)
	assert.Equal(t, []string{token}, served, "the same WIT-SVID, with the signer away")
	again, _ := to.iss.WITSVIDs()
	assert.Equal(t, saved, again)
	res, err = to.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Stale: 1}, res, "it holds one already")

	later := witRestoredIssuer(t, from, func() time.Time { return time.Now().Add(2 * time.Hour) })
	res, err = later.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Expired: 1}, res)
	got, _ := later.iss.WITSVIDs()
	assert.Empty(t, got, "nothing to serve")

	// The key that signed it revoked: it is not served.
	_, err = from.ca.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, from.ca.ActivateWITKey(t.Context()))
	kid := jwsKeyID(t, token)
	require.NoError(t, from.ca.RevokeWITKey(t.Context(), kid))
	revoked := witRestoredIssuer(t, from, nil)
	res, err = revoked.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Untrusted: 1}, res)
	served, err = servedWITs(t, revoked)
	assert.Empty(t, served, "not the revoked key's: %v", err)

	// Its entry changed since.
	entries, _, err := from.store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	entries[0].Hint = "changed"
	_, err = from.store.Update(t.Context(), entries[0])
	require.NoError(t, err)
	changed := witRestoredIssuer(t, from, nil)
	res, err = changed.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Stale: 1}, res)
}

// Property: WIT-SVIDs that do not check out are refused all together, and
// no error shows the key.
func TestRestoreWITSVIDsRefusesWhatDoesNotCheckOut(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	from, saved, token := witSavedFrom(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherJWK := must(jose.JSONWebKey{Key: other, Algorithm: "ES256"}.MarshalJSON())
	publicJWK := must(jose.JSONWebKey{Key: other.Public(), Algorithm: "ES256"}.MarshalJSON())
	parts := strings.Split(token, ".")
	sig := []byte(parts[2])
	sig[3] ^= 1
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	for _, tc := range []struct {
		name string
		edit func(*issuer.SavedWITSVID)
		want string
	}{
		{"a forged signature", func(s *issuer.SavedWITSVID) { s.Token = forged }, "its signature does not verify"},
		{"not a JWS", func(s *issuer.SavedWITSVID) { s.Token = "x" }, "not a compact JWS"},
		{"another key", func(s *issuer.SavedWITSVID) { s.PrivateKey = otherJWK }, "binds another key"},
		{"a public key", func(s *issuer.SavedWITSVID) { s.PrivateKey = publicJWK }, "no private key"},
		{"a key that does not parse", func(s *issuer.SavedWITSVID) { s.PrivateKey = []byte("secret") }, "its key does not parse"},
		{"too long", func(s *issuer.SavedWITSVID) { s.Token = strings.Repeat("x", issuer.MaxSavedWITLength+1) }, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := saved[0]
			tc.edit(&s)
			to := witRestoredIssuer(t, from, nil)
			_, err := to.iss.RestoreWITSVIDs([]issuer.SavedWITSVID{s})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(saved[0].PrivateKey))
			assert.NotContains(t, err.Error(), "secret")
			got, _ := to.iss.WITSVIDs()
			assert.Empty(t, got)
		})
	}
}

// jwsKeyID returns the kid of a compact JWS.
func jwsKeyID(t *testing.T, token string) string {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256})
	require.NoError(t, err)
	return jws.Signatures[0].Header.KeyID
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
