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

// FuzzInstanceSelectors feeds arbitrary Compute API answers to the
// instance parser and the selectors made of them: no panic; an instance
// of another ID is refused; every selector is valid and of gcp_iit.
func FuzzInstanceSelectors(f *testing.F) {
	f.Add([]byte(`{"id":"4567891234567891234","tags":{"items":["web"]},"labels":{"env":"prod"},"metadata":{"items":[{"key":"role","value":"x"}]},"serviceAccounts":[{"email":"a@b"}]}`))
	f.Add([]byte(`{"id":"1"}`))
	f.Add([]byte(`{"id":"4567891234567891234","metadata":{"items":[{"key":"role","value":null}]},"labels":{"env":"a:b\u0000"}}`))
	f.Add([]byte(`[]`))
	cc, err := newComputeClient(InstanceMetadataConfig{AllowedLabelKeys: []string{"env"}, AllowedMetadataKeys: []string{"role"}, ServiceAccountFile: ""})
	require.NoError(f, err)
	ce := ComputeEngine{ProjectID: testProject, Zone: "us-central1-a", InstanceID: "4567891234567891234", InstanceName: "node-1"}
	f.Fuzz(func(t *testing.T, body []byte) {
		inst, err := parseInstance(body)
		if err != nil {
			return
		}
		sels, err := cc.instanceSelectors(ce, inst)
		if err != nil {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			return
		}
		require.Equal(t, ce.InstanceID, inst.ID)
		for _, s := range sels {
			require.NoError(t, s.Validate())
			require.Equal(t, Type, s.Type)
		}
	})
}
