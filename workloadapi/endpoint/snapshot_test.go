package endpoint_test

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestSnapshotValidate(t *testing.T) {
	f := newFixture(t)
	web := f.svid(t, webID, "")
	other := spiffeid.RequireTrustDomainFromString("other.test")
	otherSVID := &x509svid.SVID{ID: spiffeid.RequireFromPath(other, "/x")}
	otherSVID.Certificates, otherSVID.PrivateKey = testca.New(t, other).NewLeaf(t, otherSVID.ID)
	jwtOnly := spiffebundle.New(fedTD)
	require.NoError(t, jwtOnly.AddJWTAuthority("k", f.fedJWT.PublicKey()))
	withHint := func(h string) *x509svid.SVID {
		s := f.svid(t, dbID, h)
		return s
	}
	bundles := []*spiffebundle.Bundle{f.own, f.federated}

	for _, tt := range []struct {
		name string
		snap *endpoint.Snapshot
		err  string
	}{
		{"valid", f.snapshot(web), ""},
		{"valid without SVIDs", f.snapshot(), ""},
		{"valid, federated bundle with JWT keys only", &endpoint.Snapshot{TrustDomain: td, Bundles: []*spiffebundle.Bundle{f.own, jwtOnly}}, ""},
		{"no trust domain", &endpoint.Snapshot{Bundles: bundles}, "trust domain is missing"},
		{"nil bundle", &endpoint.Snapshot{TrustDomain: td, Bundles: []*spiffebundle.Bundle{f.own, nil}}, "nil bundle"},
		{"two bundles for one trust domain", &endpoint.Snapshot{TrustDomain: td, Bundles: []*spiffebundle.Bundle{f.own, f.own}}, "two bundles"},
		{"no own bundle", &endpoint.Snapshot{TrustDomain: td, Bundles: []*spiffebundle.Bundle{f.federated}}, "no bundle for the own trust domain"},
		{"nil SVID", f.snapshot(nil), "private key are required"},
		{"SVID without key", f.snapshot(&x509svid.SVID{ID: webID, Certificates: web.Certificates}), "private key are required"},
		{"SVID without certificates", f.snapshot(&x509svid.SVID{ID: webID, PrivateKey: web.PrivateKey}), "private key are required"},
		// go-spiffe reads the ID from the leaf; spiffe_id must agree.
		{"leaf names another ID", f.snapshot(&x509svid.SVID{ID: dbID, Certificates: web.Certificates, PrivateKey: web.PrivateKey}), "leaf certificate names"},
		{"leaf without URI SAN", f.snapshot(&x509svid.SVID{ID: webID, Certificates: []*x509.Certificate{f.root.Cert()}, PrivateKey: web.PrivateKey}), "X509-SVID 0"},
		// WAPI rule 10: every X509SVID carries the bundle of its trust domain.
		{"no bundle for the SVID's trust domain", f.snapshot(otherSVID), "no X.509 bundle"},
		// WAPI rule 8: unique hints of at most 1024 bytes.
		{"duplicate hint", f.snapshot(f.svid(t, webID, "a"), withHint("a")), "duplicate hint"},
		{"hint too long", f.snapshot(withHint(strings.Repeat("h", endpoint.MaxHintLength+1))), "hint longer"},
		{"WIT-SVID without token", &endpoint.Snapshot{TrustDomain: td, Bundles: bundles, WITSVIDs: []endpoint.WITSVID{{ID: webID, Key: "k"}}}, "WIT-SVID 0"},
		{"WIT-SVID duplicate hint", &endpoint.Snapshot{TrustDomain: td, Bundles: bundles, WITSVIDs: []endpoint.WITSVID{
			{ID: webID, Token: "t", Key: "k", Hint: "h"}, {ID: dbID, Token: "t", Key: "k", Hint: "h"},
		}}, "duplicate hint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.snap.Validate()
			if tt.err == "" {
				require.NoError(t, err)
				require.NoError(t, f.handler.Set("k", tt.snap))
				require.Same(t, tt.snap, f.handler.Snapshot("k"))
				return
			}
			require.ErrorContains(t, err, "endpoint: invalid snapshot: ")
			require.ErrorContains(t, err, tt.err)
			// MemoryHandler.Set refuses it and keeps the previous view.
			require.NoError(t, f.handler.Set("k", f.snapshot(web)))
			require.Error(t, f.handler.Set("k", tt.snap))
			require.NotSame(t, tt.snap, f.handler.Snapshot("k"))
		})
	}
	require.Nil(t, f.handler.Snapshot("missing"))
}
