package nodeapi_test

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
)

// validPBEntry is an entry as a server sends it.
func validPBEntry() *nodepb.Entry {
	return &nodepb.Entry{
		Id:        "0123456789abcdef0123456789abcdef",
		SpiffeId:  "spiffe://example.org/web",
		ParentId:  "spiffe://example.org/spiffekit/agent/x",
		Selectors: []*nodepb.Selector{{Type: "unix", Value: "uid:1000"}},
		Revision:  1,
	}
}

// Property: the client takes from the entry stream only what holds: valid
// entries and IDs, bundles of the trust domains they name, certificates.
func TestParseUpdateRejectsMalformed(t *testing.T) {
	ownBundle, err := spiffebundle.FromX509Authorities(td, []*x509.Certificate{testca.New(t, td).Root()}).Marshal()
	require.NoError(t, err)
	bad := validPBEntry()
	bad.Revision = 0
	for _, tt := range []struct {
		name string
		resp *nodepb.SyncResponse
		want string
	}{
		{"bad upsert", &nodepb.SyncResponse{Upserts: []*nodepb.Entry{bad}}, "revision"},
		{"bad deleted ID", &nodepb.SyncResponse{DeletedIds: []string{"x/y"}}, "deleted entry ID"},
		{"bad bundle", &nodepb.SyncResponse{Bundle: []byte("{")}, "bundle from the server"},
		{"bad federated name", &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{"NO": nil}}, "federated trust domain"},
		{"bad federated bundle", &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{"partner.example": []byte("[]")}}, "bundle of partner.example"},
		{"bad tainted CA", &nodepb.SyncResponse{TaintedX509Cas: [][]byte{{1}}}, "tainted CA"},
		{"bad active CA", &nodepb.SyncResponse{ActiveX509Ca: []byte{1}}, "active CA"},
		{"empty tainted JWT kid", &nodepb.SyncResponse{TaintedJwtKeyIds: []string{"k1", ""}}, "tainted JWT key"},
		{"long tainted JWT kid", &nodepb.SyncResponse{TaintedJwtKeyIds: []string{strings.Repeat("k", 257)}}, "tainted JWT key"},
		{"control character in a tainted WIT kid", &nodepb.SyncResponse{TaintedWitKeyIds: []string{"w\n1"}}, "tainted WIT key"},
		{"tainted WIT kid not UTF-8", &nodepb.SyncResponse{TaintedWitKeyIds: []string{"w\xff"}}, "tainted WIT key"},
		// Federation rule: the own trust domain never comes through
		// federation, even if a server sends it.
		{"own trust domain federated", &nodepb.SyncResponse{FederatedBundlesSet: true, FederatedBundles: map[string][]byte{td.Name(): ownBundle}}, "invalid federated trust domain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := nodeapi.ParseUpdate(td, tt.resp)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	u, err := nodeapi.ParseUpdate(td, &nodepb.SyncResponse{Upserts: []*nodepb.Entry{validPBEntry()}, DeletedIds: []string{"fedcba9876543210fedcba9876543210"}})
	require.NoError(t, err)
	assert.Len(t, u.Upserts, 1)
	assert.Len(t, u.Deleted, 1)
	assert.False(t, u.FederatedSet)
	assert.Nil(t, u.TaintedJWTKeyIDs, "a server before tainted keys sends none")
	assert.Nil(t, u.TaintedWITKeyIDs)

	u, err = nodeapi.ParseUpdate(td, &nodepb.SyncResponse{TaintedJwtKeyIds: []string{"k1", "k2"}, TaintedWitKeyIds: []string{"w1"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"k1", "k2"}, u.TaintedJWTKeyIDs)
	assert.Equal(t, []string{"w1"}, u.TaintedWITKeyIDs)
}
