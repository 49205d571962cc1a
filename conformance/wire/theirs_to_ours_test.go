// Package wire proves that spiffekit's Workload API messages are
// wire-compatible with go-spiffe v2.9.0's generated ones, in both directions,
// over real gRPC on unix sockets: go-spiffe's generated client stubs call
// spiffekit's endpoint.Server, and spiffekit's workloadapi client calls a
// server built on go-spiffe's generated service registration. Every field
// of every message is populated and checked on arrival. spiffekit's wire
// types are internal to its module, so they are reached only through these
// public paths.
package wire

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

const timeout = 10 * time.Second

// theirStub dials addr with go-spiffe's generated client stub and no
// security header of its own.
func theirStub(t *testing.T, addr string) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return workload.NewSpiffeWorkloadAPIClient(conn)
}

// withHeader adds the security header (WE rule 6).
func withHeader(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
}

func concatDER(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		b.Write(c.Raw)
	}
	return b.Bytes()
}

func pkcs8(t *testing.T, s *x509svid.SVID) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	require.NoError(t, err)
	return der
}

// ourServer serves a view with two X509-SVIDs, two WIT-SVIDs and both
// trust domains' bundles, with the WIT profile on.
type ourServer struct {
	f          *workloadtest.Fixture
	web, db    *x509svid.SVID
	witA, witB endpoint.WITSVID
	stub       workload.SpiffeWorkloadAPIClient
}

func newOurServer(t *testing.T) *ourServer {
	f := workloadtest.New(t)
	s := &ourServer{f: f,
		web:  f.SVID(t, workloadtest.WebID, "internal"),
		db:   f.SVID(t, workloadtest.DBID, "external"),
		witA: f.WITSVID(t, workloadtest.WebID, "wit-internal"),
		witB: f.WITSVID(t, workloadtest.DBID, "wit-external"),
	}
	snap := f.Snapshot(s.web, s.db)
	snap.WITSVIDs = []endpoint.WITSVID{s.witA, s.witB}
	require.NoError(t, f.Handler.Set(f.UID, snap))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler, WIT: true})
	s.stub = theirStub(t, srv.Addr)
	return s
}

// TestTheirStubsOurServerX509 decodes FetchX509SVID and FetchX509Bundles
// with go-spiffe's message types (wire contract, section B).
func TestTheirStubsOurServerX509(t *testing.T) {
	s := newOurServer(t)
	ownRoot, fedRoot := s.f.X509.Certificate().Raw, s.f.FedX509.Certificate().Raw

	stream, err := s.stub.FetchX509SVID(withHeader(t), &workload.X509SVIDRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Len(t, resp.Svids, 2)
	for i, want := range []*x509svid.SVID{s.web, s.db} {
		got := resp.Svids[i] // WAPI rule 9: order kept, default first
		assert.Equal(t, want.ID.String(), got.SpiffeId)
		assert.Equal(t, concatDER(want.Certificates), got.X509Svid, "leaf first, DER concatenated")
		assert.Equal(t, pkcs8(t, want), got.X509SvidKey, "PKCS#8 DER")
		assert.Equal(t, ownRoot, got.Bundle)
		assert.Equal(t, want.Hint, got.Hint)
	}
	assert.Equal(t, map[string][]byte{"spiffe://federated.test": fedRoot}, resp.FederatedBundles,
		"federated_bundles holds only foreign trust domains, keyed by trust domain ID")
	assert.Empty(t, resp.Crl)

	bstream, err := s.stub.FetchX509Bundles(withHeader(t), &workload.X509BundlesRequest{})
	require.NoError(t, err)
	bresp, err := bstream.Recv()
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"spiffe://example.org": ownRoot, "spiffe://federated.test": fedRoot}, bresp.Bundles)
	assert.Empty(t, bresp.Crl)
}

// TestTheirStubsOurServerJWT sends every JWT request field with go-spiffe's
// types and decodes every response field.
func TestTheirStubsOurServerJWT(t *testing.T) {
	s := newOurServer(t)
	ctx := withHeader(t)

	// audience (repeated) and no spiffe_id: one token per identity.
	all, err := s.stub.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db", "cache"}})
	require.NoError(t, err)
	require.Len(t, all.Svids, 2)
	bundles := jwtbundle.NewSet(s.f.Own.JWTBundle(), s.f.Federated.JWTBundle())
	for i, want := range []*x509svid.SVID{s.web, s.db} {
		got := all.Svids[i]
		assert.Equal(t, want.ID.String(), got.SpiffeId)
		assert.Equal(t, want.Hint, got.Hint)
		svid, err := jwtsvid.ParseAndValidate(got.Svid, bundles, []string{"cache"})
		require.NoError(t, err)
		assert.Equal(t, want.ID, svid.ID)
		assert.Equal(t, []string{"db", "cache"}, svid.Audience)
	}

	// spiffe_id selects one identity.
	one, err := s.stub.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: s.db.ID.String()})
	require.NoError(t, err)
	require.Len(t, one.Svids, 1)
	assert.Equal(t, s.db.ID.String(), one.Svids[0].SpiffeId)

	// An empty audience is a missing mandatory field (WAPI rule 12).
	_, err = s.stub.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{SpiffeId: s.db.ID.String()})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	bstream, err := s.stub.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})
	require.NoError(t, err)
	bresp, err := bstream.Recv()
	require.NoError(t, err)
	require.Len(t, bresp.Bundles, 2)
	for td, a := range map[string]interface{ KeyID() string }{"spiffe://example.org": s.f.JWT, "spiffe://federated.test": s.f.FedJWT} {
		var set jose.JSONWebKeySet
		require.NoError(t, json.Unmarshal(bresp.Bundles[td], &set), td)
		require.Len(t, set.Keys, 1, td)
		assert.Equal(t, a.KeyID(), set.Keys[0].KeyID, td)
		assert.True(t, set.Keys[0].IsPublic(), "%s: JWT bundles carry public keys only", td)
	}
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(bresp.Bundles["spiffe://example.org"], &set))
	assert.True(t, set.Keys[0].Key.(*ecdsa.PublicKey).Equal(s.f.JWT.PublicKey()))

	// ValidateJWTSVID: both request fields, both response fields.
	token := all.Svids[0].Svid
	v, err := s.stub.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db", Svid: token})
	require.NoError(t, err)
	assert.Equal(t, s.web.ID.String(), v.SpiffeId)
	claims := v.Claims.AsMap()
	assert.Equal(t, s.web.ID.String(), claims["sub"])
	assert.Equal(t, []any{"db", "cache"}, claims["aud"])
	assert.IsType(t, float64(0), claims["exp"], "JSON numbers become doubles")
	assert.IsType(t, float64(0), claims["iat"])

	_, err = s.stub.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "other", Svid: token})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "wrong audience: %v", err)
	_, err = s.stub.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Svid: token})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "missing audience: %v", err)
	_, err = s.stub.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "db"})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "missing svid: %v", err)
}

// TestTheirStubsOurServerWIT decodes the WIT messages, whose key and bundle
// fields are strings, not bytes.
func TestTheirStubsOurServerWIT(t *testing.T) {
	s := newOurServer(t)
	ctx := withHeader(t)

	stream, err := s.stub.FetchWITSVID(ctx, &workload.WITSVIDRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Len(t, resp.Svids, 2)
	for i, want := range []endpoint.WITSVID{s.witA, s.witB} {
		got := resp.Svids[i]
		assert.Equal(t, want.ID.String(), got.SpiffeId)
		assert.Equal(t, want.Token, got.WitSvid)
		assert.JSONEq(t, want.Key, got.WitSvidKey)
		assert.Equal(t, want.Hint, got.Hint)
	}

	// spiffe_id selects one WIT-SVID.
	stream, err = s.stub.FetchWITSVID(ctx, &workload.WITSVIDRequest{SpiffeId: s.witB.ID.String()})
	require.NoError(t, err)
	resp, err = stream.Recv()
	require.NoError(t, err)
	require.Len(t, resp.Svids, 1)
	assert.Equal(t, s.witB.Token, resp.Svids[0].WitSvid)

	bstream, err := s.stub.FetchWITBundles(ctx, &workload.WITBundlesRequest{})
	require.NoError(t, err)
	bresp, err := bstream.Recv()
	require.NoError(t, err)
	require.Len(t, bresp.Bundles, 1, "only the own trust domain has WIT authorities")
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal([]byte(bresp.Bundles["spiffe://example.org"]), &set))
	require.Len(t, set.Keys, 1)
	assert.Equal(t, s.f.WIT.KeyID(), set.Keys[0].KeyID)
}
