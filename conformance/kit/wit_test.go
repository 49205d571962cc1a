package kit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	wapi "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// witMutation breaks the WIT profile of a mutant one way.
type witMutation struct {
	header, claims func(map[string]any) // change the token's header or claims
	signWithOther  bool                 // sign with a key the WIT bundle does not hold
	serveOtherKey  bool                 // serve a private key other than cnf's
	dupKid         bool                 // a second bundle key under the signing key's kid
	noBundles      bool                 // FetchWITBundles answers Unimplemented
	denied         bool                 // FetchWITSVID answers PermissionDenied
	noSVIDs        bool                 // FetchWITSVID sends a message without SVIDs
	noKey          bool                 // the WIT-SVID comes without its private key
}

// witKid is the kid of the mutant's WIT signing key.
const witKid = "wit-1"

// FetchWITSVID serves one WIT-SVID for spiffe://example.org/workload,
// broken as m.witMut says, or answers Unimplemented without m.wit.
func (m *mutant) FetchWITSVID(req *wapi.WITSVIDRequest, stream grpc.ServerStreamingServer[wapi.WITSVIDResponse]) error {
	if m.witMut == nil {
		return m.UnimplementedSpiffeWorkloadAPIServer.FetchWITSVID(req, stream)
	}
	mut := m.witMut
	if mut.denied || m.deny {
		return status.Error(codes.PermissionDenied, "no WIT-SVID issued")
	}
	workloadKey := testca.NewECKey(panicTB{})
	cnf, err := jwkMap(jose.JSONWebKey{Key: workloadKey.Public(), Algorithm: "ES256"})
	if err != nil {
		return err
	}
	header := map[string]any{"alg": "ES256", "kid": witKid, "typ": "wit+jwt"}
	claims := map[string]any{
		"sub": "spiffe://example.org/workload",
		"exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(),
		"cnf": map[string]any{"jwk": cnf},
	}
	if mut.header != nil {
		mut.header(header)
	}
	if mut.claims != nil {
		mut.claims(claims)
	}
	signer := m.witKey
	if mut.signWithOther {
		signer = testca.NewECKey(panicTB{})
	}
	served := workloadKey
	if mut.serveOtherKey {
		served = testca.NewECKey(panicTB{})
	}
	private, err := jose.JSONWebKey{Key: served, Algorithm: "ES256"}.MarshalJSON()
	if err != nil {
		return err
	}
	sub, _ := claims["sub"].(string)
	svid := &wapi.WITSVID{SpiffeId: sub, WitSvid: testca.SignJWT(panicTB{}, signer, header, claims), WitSvidKey: string(private), Hint: "internal"}
	if mut.noKey {
		svid.WitSvidKey = ""
	}
	svids := []*wapi.WITSVID{svid}
	if mut.noSVIDs {
		svids = nil
	}
	if err := stream.Send(&wapi.WITSVIDResponse{Svids: svids}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// FetchWITBundles serves the WIT bundle of example.org.
func (m *mutant) FetchWITBundles(req *wapi.WITBundlesRequest, stream grpc.ServerStreamingServer[wapi.WITBundlesResponse]) error {
	if m.witMut == nil || m.witMut.noBundles {
		return m.UnimplementedSpiffeWorkloadAPIServer.FetchWITBundles(req, stream)
	}
	if m.deny {
		return status.Error(codes.PermissionDenied, "no identity issued")
	}
	keys := []jose.JSONWebKey{{Key: m.witKey.Public(), KeyID: witKid, Use: "wit-svid"}}
	if m.witMut.dupKid {
		keys = append(keys, jose.JSONWebKey{Key: testca.NewECKey(panicTB{}).Public(), KeyID: witKid, Use: "wit-svid"})
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		return err
	}
	if err := stream.Send(&wapi.WITBundlesResponse{Bundles: map[string]string{"spiffe://example.org": string(set)}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// jwkMap returns a JWK as a JSON object.
func jwkMap(k jose.JSONWebKey) (map[string]any, error) {
	raw, err := k.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(raw, &m)
}

// TestWITMutations serves the WIT profile broken one way at a time: the
// kit must fail exactly the rule broken (or note the deviation of a
// SHOULD), and nothing when nothing is.
func TestWITMutations(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, row := range []struct {
		name       string
		mut        witMutation
		failed     []string
		deviations []string
	}{
		{name: "none"},
		{name: "typ JWT", mut: witMutation{header: func(h map[string]any) { h["typ"] = "JWT" }}, failed: []string{"WIT rule 2"}},
		{name: "no typ", mut: witMutation{header: func(h map[string]any) { delete(h, "typ") }}, failed: []string{"WIT rule 2"}},
		{name: "alg none", mut: witMutation{header: func(h map[string]any) { h["alg"] = "none" }}, failed: []string{"WIT rule 3"}},
		{name: "alg ES256K", mut: witMutation{header: func(h map[string]any) { h["alg"] = "ES256K" }}, failed: []string{"WIT rule 3"}},
		{name: "no kid", mut: witMutation{header: func(h map[string]any) { delete(h, "kid") }}, failed: []string{"WIT rule 1"}},
		{name: "an extra header", mut: witMutation{header: func(h map[string]any) { h["x5u"] = "https://example.org/x" }}, deviations: []string{"WIT rule 4"}},
		{name: "sub not a SPIFFE ID", mut: witMutation{claims: func(c map[string]any) { c["sub"] = "https://example.org/workload" }}, failed: []string{"WIT rule 5"}},
		{name: "no cnf", mut: witMutation{claims: func(c map[string]any) { delete(c, "cnf") }}, failed: []string{"WIT rule 6"}},
		{name: "cnf without jwk", mut: witMutation{claims: func(c map[string]any) { c["cnf"] = map[string]any{"jkt": "abc"} }}, failed: []string{"WIT rule 6"}},
		{name: "cnf.jwk a private key", mut: witMutation{claims: func(c map[string]any) {
			k, err := jwkMap(jose.JSONWebKey{Key: testca.NewECKey(panicTB{}), Algorithm: "ES256"})
			if err != nil {
				panic(err)
			}
			c["cnf"] = map[string]any{"jwk": k}
		}}, failed: []string{"WIT rule 6"}},
		{name: "cnf.jwk without alg", mut: witMutation{claims: func(c map[string]any) {
			delete(c["cnf"].(map[string]any)["jwk"].(map[string]any), "alg")
		}}, failed: []string{"WIT rule 6"}},
		{name: "expired", mut: witMutation{claims: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }}, failed: []string{"WIT rule 7"}},
		{name: "no exp", mut: witMutation{claims: func(c map[string]any) { delete(c, "exp") }}, failed: []string{"WIT rule 7"}},
		{name: "nbf in an hour", mut: witMutation{claims: func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }}, failed: []string{"WIT rule 8"}},
		{name: "aud", mut: witMutation{claims: func(c map[string]any) { c["aud"] = "spiffe://example.org/db" }}, failed: []string{"WIT rule 12"}},
		{name: "iss an https URL", mut: witMutation{claims: func(c map[string]any) { c["iss"] = "https://oidc.example.org" }}, deviations: []string{"WIT rule 11"}},
		{name: "signed by a key not in the bundle", mut: witMutation{signWithOther: true}, failed: []string{"WIT rule 16b"}},
		{name: "a kid naming no key", mut: witMutation{header: func(h map[string]any) { h["kid"] = "wit-9" }}, failed: []string{"WIT rule 16b"}},
		{name: "a private key other than cnf's", mut: witMutation{serveOtherKey: true}, failed: []string{"WIT rule 17c"}},
		{name: "two bundle keys with one kid", mut: witMutation{dupKid: true}, failed: []string{"WIT rule 16a"}},
		{name: "no SVID in the message", mut: witMutation{noSVIDs: true}, failed: []string{"WIT rule 17a"}},
		{name: "no private key", mut: witMutation{noKey: true}, failed: []string{"WIT rule 17a"}},
		{name: "no FetchWITBundles", mut: witMutation{noBundles: true}, failed: []string{"WIT rule 17b"}},
		{name: "no WIT-SVID for this caller", mut: witMutation{denied: true}},
	} {
		t.Run(row.name, func(t *testing.T) {
			m := newMutant(t)
			m.witMut = &row.mut
			r := check(t, kit.WorkloadConfig{Addr: m.serve(t)})
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", text(t, r))
			if row.name == "none" {
				for _, rule := range []string{"WIT rule 1", "WIT rule 2", "WIT rule 3", "WIT rule 5", "WIT rule 6", "WIT rule 7",
					"WIT rule 12", "WIT rule 13", "WIT rule 16a", "WIT rule 16b", "WIT rule 17a", "WIT rule 17b", "WIT rule 17c"} {
					assert.Equal(t, kit.Pass, r.Verdicts()[rule], rule)
				}
				assert.Len(t, r.ByRule("WE rule 6"), 12, "ten RPC calls without a valid header, and the two of WIT")
			}
			if row.mut.denied {
				assert.Equal(t, kit.NotApplicable, r.Verdicts()["WIT rule 17a"])
				assert.Equal(t, kit.Pass, r.Verdicts()["WIT rule 17b"])
			}
		})
	}
}

// TestWITUnregistered: a caller entitled to nothing is refused
// FetchWITSVID with PermissionDenied too (WAPI rule 10b); an endpoint
// that serves it WIT-SVIDs deviates.
func TestWITUnregistered(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	m := newMutant(t)
	m.witMut = &witMutation{}
	denied := newMutant(t)
	denied.deny, denied.witMut = true, &witMutation{}
	r := check(t, kit.WorkloadConfig{Addr: m.serve(t), UnregisteredAddr: denied.serve(t)})
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	require.Len(t, r.ByRule("WAPI rule 10b"), 3)
	assert.Equal(t, kit.Pass, r.Verdicts()["WAPI rule 10b"])

	served := newMutant(t)
	served.witMut = &witMutation{}
	r, err := kit.CheckUnregistered(t.Context(), kit.WorkloadConfig{Addr: served.serve(t), Timeout: 20 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, kit.DeviationAllowed, r.Verdicts()["WAPI rule 10b"])
	assert.Equal(t, kit.DeviationAllowed, r.ByRule("WAPI rule 10b")[2].Verdict, "%s", text(t, r))
}

// TestWITAbsent: an endpoint without the WIT profile answers
// Unimplemented on both RPCs, and no WIT rule is checked.
func TestWITAbsent(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	r := check(t, kit.WorkloadConfig{Addr: newMutant(t).serve(t)})
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	assert.Len(t, r.ByRule("WAPI rule 1"), 4, "X.509, JWT, and both WIT RPCs Unimplemented")
	for id := range r.Verdicts() {
		assert.NotContains(t, id, "WIT rule", "no WIT rule without the profile")
	}
}

// TestSpiffekitWIT runs the kit against spiffekit's Workload API server
// with the WIT profile on, serving two WIT-SVIDs minted by package ca:
// every MUST rule passes, and the WIT rules are checked on both.
func TestSpiffekitWIT(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := workloadtest.New(t)
	snap := f.Snapshot(f.SVID(t, workloadtest.WebID, ""))
	snap.WITSVIDs = []endpoint.WITSVID{f.WITSVID(t, workloadtest.WebID, "a"), f.WITSVID(t, workloadtest.DBID, "b")}
	require.NoError(t, f.Handler.Set(f.UID, snap))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler, WIT: true})

	r := check(t, kit.WorkloadConfig{Addr: srv.Addr})
	requireAllMustPass(t, r)
	for _, rule := range []string{"WIT rule 1", "WIT rule 2", "WIT rule 3", "WIT rule 4", "WIT rule 5", "WIT rule 6", "WIT rule 7",
		"WIT rule 12", "WIT rule 13", "WIT rule 16a", "WIT rule 16b", "WIT rule 17a", "WIT rule 17b", "WIT rule 17c"} {
		assert.Equal(t, kit.Pass, r.Verdicts()[rule], rule)
	}
	assert.Len(t, r.ByRule("WIT rule 17c"), 2, "both WIT-SVIDs")
}

// TestWITOffline checks WIT-SVIDs the Workload API does not serve: a
// token that is not compact JWS, one whose key is not a JWK or public,
// and one checked without a bundle or a key.
func TestWITOffline(t *testing.T) {
	key := testca.NewECKey(t)
	cnf, err := jwkMap(jose.JSONWebKey{Key: key.Public(), Algorithm: "ES256"})
	require.NoError(t, err)
	token := testca.SignJWT(t, key, map[string]any{"alg": "ES256", "kid": "k", "typ": "wit+jwt"},
		map[string]any{"sub": "spiffe://example.org/w", "exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Unix(), "cnf": map[string]any{"jwk": cnf}})
	public, err := jose.JSONWebKey{Key: key.Public()}.MarshalJSON()
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		svid   kit.WITSVID
		failed []string
		na     []string
	}{
		{"not compact", kit.WITSVID{Token: "a.b"}, []string{"WIT rule 13"}, nil},
		{"not base64url", kit.WITSVID{Token: "a.b*.c"}, []string{"WIT rule 13"}, nil},
		{"no bundle, no key", kit.WITSVID{Token: token}, nil, []string{"WIT rule 16b", "WIT rule 17c"}},
		{"a key that is no JWK", kit.WITSVID{Token: token, Key: "{}"}, []string{"WIT rule 17c"}, nil},
		{"a public key", kit.WITSVID{Token: token, Key: string(public)}, []string{"WIT rule 17c"}, nil},
		{"a bundle without its trust domain", kit.WITSVID{Token: token, Keys: map[string][]jose.JSONWebKey{"other.org": {{Key: key.Public(), KeyID: "k"}}}}, []string{"WIT rule 16b"}, nil},
	} {
		r := kit.NewReport(kit.ModeWorkload, tc.name)
		r.CheckWITSVID(tc.svid, time.Now())
		assert.Equal(t, tc.failed, r.FailedRules(), "%s: %s", tc.name, text(t, r))
		for _, id := range tc.na {
			assert.Equal(t, kit.NotApplicable, r.Verdicts()[id], "%s: %s", tc.name, id)
		}
	}
}
