package endpoint_test

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// raw is svid in its wire form.
func raw(t testing.TB, svid *x509svid.SVID) *endpoint.RawX509SVID {
	t.Helper()
	r := &endpoint.RawX509SVID{ID: svid.ID, Hint: svid.Hint}
	for _, c := range svid.Certificates {
		r.Certificates = append(r.Certificates, c.Raw)
	}
	var err error
	r.PrivateKey, err = x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	require.NoError(t, err)
	return r
}

// rawSnapshot is a view with the given raw SVIDs and both bundles.
func (f *fixture) rawSnapshot(svids ...*endpoint.RawX509SVID) *endpoint.Snapshot {
	return &endpoint.Snapshot{TrustDomain: td, RawX509SVIDs: svids, Bundles: []*spiffebundle.Bundle{f.own, f.federated}}
}

func TestRawSnapshotValidate(t *testing.T) {
	f := newFixture(t)
	web := f.svid(t, webID, "")
	rawWeb := raw(t, web)
	other := spiffeid.RequireTrustDomainFromString("other.test")
	otherSVID := &x509svid.SVID{ID: spiffeid.RequireFromPath(other, "/x")}
	otherSVID.Certificates, otherSVID.PrivateKey = testca.New(t, other).NewLeaf(t, otherSVID.ID)
	for _, tt := range []struct {
		name string
		snap *endpoint.Snapshot
		err  string
	}{
		{"valid", f.rawSnapshot(rawWeb), ""},
		{"valid, with hints", f.rawSnapshot(raw(t, f.svid(t, webID, "a")), raw(t, f.svid(t, dbID, "b"))), ""},
		{"nil SVID", f.rawSnapshot(nil), "private key are required"},
		{"no ID", f.rawSnapshot(&endpoint.RawX509SVID{Certificates: rawWeb.Certificates, PrivateKey: rawWeb.PrivateKey}), "private key are required"},
		{"no certificates", f.rawSnapshot(&endpoint.RawX509SVID{ID: webID, PrivateKey: rawWeb.PrivateKey}), "private key are required"},
		{"no key", f.rawSnapshot(&endpoint.RawX509SVID{ID: webID, Certificates: rawWeb.Certificates}), "private key are required"},
		{"an empty certificate", f.rawSnapshot(&endpoint.RawX509SVID{ID: webID, Certificates: [][]byte{rawWeb.Certificates[0], nil}, PrivateKey: rawWeb.PrivateKey}), "empty certificate"},
		// WAPI rule 10: every X509SVID carries the bundle of its trust domain.
		{"no bundle for the SVID's trust domain", f.rawSnapshot(raw(t, otherSVID)), "no X.509 bundle"},
		// WAPI rule 8: unique hints of at most 1024 bytes.
		{"duplicate hint", f.rawSnapshot(raw(t, f.svid(t, webID, "a")), raw(t, f.svid(t, dbID, "a"))), "duplicate hint"},
		{"hint too long", f.rawSnapshot(raw(t, f.svid(t, webID, strings.Repeat("h", endpoint.MaxHintLength+1)))), "hint longer"},
		{"both forms", &endpoint.Snapshot{TrustDomain: td, X509SVIDs: []*x509svid.SVID{web}, RawX509SVIDs: []*endpoint.RawX509SVID{rawWeb},
			Bundles: []*spiffebundle.Bundle{f.own}}, "both X509SVIDs and RawX509SVIDs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.snap.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "endpoint: invalid snapshot: ")
			require.ErrorContains(t, err, tt.err)
			require.Error(t, f.handler.Set("k", tt.snap))
		})
	}
}

// A raw SVID is sent exactly as the parsed one it was made from: the same
// message, byte for byte, and clients read the same SVID from it.
func TestRawSVIDSentAsParsed(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	f := newFixture(t)
	web, db := f.svid(t, webID, "web"), f.svid(t, dbID, "")
	client, _ := serve(t, endpoint.Config{Handler: f.handler})

	require.NoError(t, f.handler.Set(f.uid, f.snapshot(web, db)))
	parsed, err := recvFirst(t, withHeader(t.Context()), client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	require.NoError(t, f.handler.Set(f.uid, f.rawSnapshot(raw(t, web), raw(t, db))))
	fromRaw, err := recvFirst(t, withHeader(t.Context()), client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)

	require.Len(t, fromRaw.Svids, 2)
	for k, m := range fromRaw.Svids {
		want := parsed.Svids[k]
		assert.Equal(t, want.SpiffeId, m.SpiffeId)
		assert.True(t, bytes.Equal(want.X509Svid, m.X509Svid), "chain of SVID %d", k)
		assert.True(t, bytes.Equal(want.X509SvidKey, m.X509SvidKey), "key of SVID %d", k)
		assert.True(t, bytes.Equal(want.Bundle, m.Bundle), "bundle of SVID %d", k)
		assert.Equal(t, want.Hint, m.Hint)
	}
	assert.Equal(t, parsed.FederatedBundles, fromRaw.FederatedBundles)
	got, err := x509svid.ParseRaw(fromRaw.Svids[0].X509Svid, fromRaw.Svids[0].X509SvidKey)
	require.NoError(t, err)
	assert.Equal(t, webID, got.ID)
}

// The identities of a raw view are those a MemoryHandler mints JWT-SVIDs
// for, as with parsed SVIDs.
func TestRawSnapshotJWTSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.rawSnapshot(raw(t, f.svid(t, webID, "w")), raw(t, f.svid(t, dbID, "")))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	resp, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"a"}})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 2)
	assert.Equal(t, webID.String(), resp.Svids[0].SpiffeId)
	assert.Equal(t, "w", resp.Svids[0].Hint)
	assert.Equal(t, dbID.String(), resp.Svids[1].SpiffeId)

	resp, err = client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"a"}, SpiffeId: dbID.String()})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 1)
	assert.Equal(t, dbID.String(), resp.Svids[0].SpiffeId)
}
