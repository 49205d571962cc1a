package gcpiit

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
)

// FuzzAttest feeds arbitrary payloads to the server: it must never panic,
// and whatever it admits it admits for the one instance the test key
// signed a token of. Seeds: that token, broken and re-signed ones.
func FuzzAttest(f *testing.F) {
	google := gcemdtest.NewKey(f, 0)
	// The seeds are issued at a fixed time that the server's clock is
	// set to, so that the corpus stays valid.
	iat := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	inst := gcemdtest.TestInstance()
	c := inst.Claims(DefaultAudience, true, iat)
	good := google.Sign(f, c)
	f.Add([]byte(good))
	f.Add([]byte(google.SignWith(f, c, jose.RS256, "other")))
	f.Add([]byte(google.Sign(f, inst.Claims(DefaultAudience, false, iat))))
	f.Add([]byte(google.Sign(f, map[string]any{"iss": 1, "aud": []int{1}, "google": nil})))
	f.Add([]byte(good[:len(good)-10]))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte("a.b.c"))

	srv, err := NewServer(ServerConfig{ProjectIDs: []string{inst.ProjectID}, Keys: gcemdtest.JWKS(f, google)})
	require.NoError(f, err)
	srv.now = func() time.Time { return iat.Add(time.Minute) }
	f.Fuzz(func(t *testing.T, payload []byte) {
		res, err := srv.Attest(t.Context(), td, payload, nil)
		if err != nil {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			return
		}
		require.Equal(t, wantPath, res.AgentID.Path())
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "instance-id:" + inst.InstanceID}))
	})
}

// FuzzParseKeys feeds arbitrary key documents to the parser: no panic,
// and what it accepts are RSA keys of at least 2,048 bits under non-empty
// key IDs.
func FuzzParseKeys(f *testing.F) {
	google := gcemdtest.NewKey(f, 0)
	f.Add(gcemdtest.JWKS(f, google))
	f.Add(gcemdtest.CertsV1(f, google))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"k":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := ParseKeys(doc)
		if err != nil {
			return
		}
		require.NotEmpty(t, keys)
		for kid, k := range keys {
			require.NotEmpty(t, kid)
			require.GreaterOrEqual(t, k.N.BitLen(), 2048)
		}
	})
}
