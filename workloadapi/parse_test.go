package workloadapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Section D: a message that breaks a rule is rejected whole (WAPI rule 6).
func TestParseX509ContextRejects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		mutate func(*workloadpb.X509SVIDResponse)
		err    string
	}{
		{name: "no SVIDs (WAPI rule 10)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids = nil }, err: "no SVIDs in response"},
		{name: "missing certificate (WAPI rule 6)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[1].X509Svid = nil }, err: "SVID 1"},
		{name: "missing key (WAPI rule 6)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[0].X509SvidKey = nil }, err: "SVID 0"},
		{name: "key of another SVID", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[0].X509SvidKey = r.Svids[1].X509SvidKey }, err: "SVID 0"},
		{name: "missing spiffe_id (WAPI rule 6)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[0].SpiffeId = "" }, err: "does not match certificate ID"},
		{name: "spiffe_id mismatch", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[0].SpiffeId = f.id("/b").String() }, err: "does not match certificate ID"},
		{name: "missing bundle (WAPI rule 6)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[1].Bundle = nil }, err: "missing bundle"},
		{name: "garbage bundle", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[1].Bundle = []byte{1, 2} }, err: "SVID 1"},
		{name: "hint too long (WAPI rule 8)", mutate: func(r *workloadpb.X509SVIDResponse) { r.Svids[1].Hint = strings.Repeat("h", 1025) }, err: "hint longer than 1024 bytes"},
		{name: "bare federated key", mutate: func(r *workloadpb.X509SVIDResponse) {
			r.FederatedBundles = map[string][]byte{"foreign.test": f.ca.Root().Raw}
		}, err: "not a trust domain SPIFFE ID"},
		{name: "federated key with path", mutate: func(r *workloadpb.X509SVIDResponse) {
			r.FederatedBundles = map[string][]byte{"spiffe://foreign.test/x": f.ca.Root().Raw}
		}, err: "has a path"},
		{name: "garbage federated bundle", mutate: func(r *workloadpb.X509SVIDResponse) {
			r.FederatedBundles = map[string][]byte{"spiffe://foreign.test": []byte("x")}
		}, err: "federated bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.x509Response("/a", "/b")
			tt.mutate(resp)
			_, err := parseX509Context(resp)
			require.ErrorContains(t, err, tt.err)
			assert.True(t, strings.HasPrefix(err.Error(), "workloadapi: "))
		})
	}
}

// FetchX509SVID(s) parse every SVID but not the bundles the caller did not ask
// for; a missing bundle is still an error (WAPI rule 6).
func TestParseX509SVIDsWithoutBundles(t *testing.T) {
	f := newFixture(t)
	resp := f.x509Response("/a", "/b")
	resp.Svids[1].Bundle = []byte{1, 2}
	resp.FederatedBundles = map[string][]byte{"spiffe://foreign.test": []byte("x")}
	got, err := parseX509SVIDResponse(resp, false)
	require.NoError(t, err)
	require.Len(t, got.SVIDs, 2)
	assert.Equal(t, f.id("/a"), got.SVIDs[0].ID)
	assert.Equal(t, 0, got.Bundles.Len())

	resp.Svids[1].Bundle = nil
	_, err = parseX509SVIDResponse(resp, false)
	require.ErrorContains(t, err, "missing bundle")

	resp = f.x509Response("/a")
	resp.Svids[0].X509SvidKey = nil
	_, err = parseX509SVIDResponse(resp, false)
	require.ErrorContains(t, err, "SVID 0")
}

func TestParseBundlesRejects(t *testing.T) {
	_, err := parseX509Bundles(&workloadpb.X509BundlesResponse{})
	assert.EqualError(t, err, "workloadapi: no bundles in response")
	_, err = parseX509Bundles(&workloadpb.X509BundlesResponse{Bundles: map[string][]byte{"bad": nil}})
	assert.ErrorContains(t, err, "not a trust domain SPIFFE ID")
	_, err = parseX509Bundles(&workloadpb.X509BundlesResponse{Bundles: map[string][]byte{"spiffe://x.test": {1}}})
	assert.ErrorContains(t, err, `bundle "spiffe://x.test"`)

	_, err = parseJWTBundles(&workloadpb.JWTBundlesResponse{})
	assert.EqualError(t, err, "workloadapi: no bundles in response")
	_, err = parseJWTBundles(&workloadpb.JWTBundlesResponse{Bundles: map[string][]byte{"bad": nil}})
	assert.ErrorContains(t, err, "not a trust domain SPIFFE ID")
	_, err = parseJWTBundles(&workloadpb.JWTBundlesResponse{Bundles: map[string][]byte{"spiffe://x.test": []byte("{")}})
	assert.ErrorContains(t, err, `bundle "spiffe://x.test"`)

	_, err = parseWITBundles(&workloadpb.WITBundlesResponse{})
	assert.EqualError(t, err, "workloadapi: no bundles in response")
	_, err = parseWITBundles(&workloadpb.WITBundlesResponse{Bundles: map[string]string{"bad": ""}})
	assert.ErrorContains(t, err, "not a trust domain SPIFFE ID")
	_, err = parseWITBundles(&workloadpb.WITBundlesResponse{Bundles: map[string]string{"spiffe://x.test": "{"}})
	assert.ErrorContains(t, err, `bundle "spiffe://x.test"`)
}

func TestParseJWTSVIDsRejects(t *testing.T) {
	f := newFixture(t)
	aud := []string{"aud"}
	good := func() *workloadpb.JWTSVID {
		return &workloadpb.JWTSVID{SpiffeId: f.id("/a").String(), Svid: f.jwt("/a", aud, time.Minute)}
	}
	tests := []struct {
		name string
		svid func() *workloadpb.JWTSVID
		err  string
	}{
		{name: "missing token (WAPI rule 6)", svid: func() *workloadpb.JWTSVID { s := good(); s.Svid = ""; return s }, err: "JWT-SVID 1"},
		{name: "wrong audience", svid: func() *workloadpb.JWTSVID {
			return &workloadpb.JWTSVID{SpiffeId: f.id("/a").String(), Svid: f.jwt("/a", []string{"other"}, time.Minute)}
		}, err: "JWT-SVID 1"},
		{name: "spiffe_id mismatch", svid: func() *workloadpb.JWTSVID { s := good(); s.SpiffeId = f.id("/b").String(); return s }, err: "does not match subject"},
		{name: "hint too long", svid: func() *workloadpb.JWTSVID { s := good(); s.Hint = strings.Repeat("h", 1025); return s }, err: "hint longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseJWTSVIDs(&workloadpb.JWTSVIDResponse{Svids: []*workloadpb.JWTSVID{good(), tt.svid()}}, aud)
			require.ErrorContains(t, err, tt.err)
		})
	}
	_, err := parseJWTSVIDs(&workloadpb.JWTSVIDResponse{}, aud)
	assert.EqualError(t, err, "workloadapi: there were no SVIDs in the response")

	// WAPI rule 8: the first of two entries with one hint wins.
	a, b := good(), good()
	a.Hint, b.Hint = "h", "h"
	svids, err := parseJWTSVIDs(&workloadpb.JWTSVIDResponse{Svids: []*workloadpb.JWTSVID{a, b}}, aud)
	require.NoError(t, err)
	require.Len(t, svids, 1)
	assert.Equal(t, "h", svids[0].Hint)
}

func TestParseWITSVIDsRejects(t *testing.T) {
	f := newFixture(t)
	other := testca.NewECKey(t)
	otherJWK, err := json.Marshal(jose.JSONWebKey{Key: other})
	require.NoError(t, err)
	publicJWK, err := json.Marshal(jose.JSONWebKey{Key: other.Public()})
	require.NoError(t, err)
	tests := []struct {
		name   string
		mutate func(*workloadpb.WITSVID)
		err    string
	}{
		{name: "missing token", mutate: func(s *workloadpb.WITSVID) { s.WitSvid = "" }, err: "WIT-SVID 0"},
		{name: "spiffe_id mismatch", mutate: func(s *workloadpb.WITSVID) { s.SpiffeId = "spiffe://example.org/x" }, err: "does not match subject"},
		{name: "missing key (WAPI rule 6)", mutate: func(s *workloadpb.WITSVID) { s.WitSvidKey = "" }, err: "missing private key"},
		{name: "garbage key", mutate: func(s *workloadpb.WITSVID) { s.WitSvidKey = "{" }, err: "unable to parse private key JWK"},
		{name: "public key", mutate: func(s *workloadpb.WITSVID) { s.WitSvidKey = string(publicJWK) }, err: "expected private key JWK"},
		{name: "key of another SVID", mutate: func(s *workloadpb.WITSVID) { s.WitSvidKey = string(otherJWK) }, err: "does not match the cnf key"},
		{name: "oversized key", mutate: func(s *workloadpb.WITSVID) { s.WitSvidKey = strings.Repeat(" ", maxJWKLength+1) }, err: "longer than"},
		{name: "hint too long", mutate: func(s *workloadpb.WITSVID) { s.Hint = strings.Repeat("h", 1025) }, err: "hint longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.witSVID("/a", "")
			tt.mutate(s)
			_, err := parseWITSVIDs(&workloadpb.WITSVIDResponse{Svids: []*workloadpb.WITSVID{s}})
			require.ErrorContains(t, err, tt.err)
		})
	}
}
