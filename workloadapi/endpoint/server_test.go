package endpoint_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestNewRequiresHandler(t *testing.T) {
	_, err := endpoint.New(endpoint.Config{})
	require.ErrorContains(t, err, "endpoint: handler is required")
}

func TestFetchX509SVID(t *testing.T) {
	f := newFixture(t)
	web, db := f.svid(t, webID, "internal"), f.svid(t, dbID, "external")
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(web, db)))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})

	resp, err := recvFirst(t, withHeader(t.Context()), client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)

	// WAPI rule 10: one X509SVID per identity, the default first (rule 9).
	require.Len(t, resp.Svids, 2)
	for i, want := range []*x509svid.SVID{web, db} {
		got := resp.Svids[i]
		assert.Equal(t, want.ID.String(), got.SpiffeId)
		assert.Equal(t, want.Hint, got.Hint)
		// x509_svid is DER leaf first, x509_svid_key PKCS#8 DER.
		parsed, err := x509svid.ParseRaw(got.X509Svid, got.X509SvidKey)
		require.NoError(t, err)
		assert.Equal(t, want.ID, parsed.ID)
		assert.True(t, parsed.Certificates[0].Equal(want.Certificates[0]))
		// bundle is the DER CA certificates of the SVID's trust domain.
		assert.Equal(t, f.root.Cert().Raw, got.Bundle)
	}
	// federated_bundles holds foreign trust domains only, keyed spiffe://td.
	assert.Equal(t, map[string][]byte{"spiffe://federated.test": f.fedRoot.Cert().Raw}, resp.FederatedBundles)
	assert.Empty(t, resp.Crl)
}

func TestFetchX509Bundles(t *testing.T) {
	f, client := serveWeb(t)

	resp, err := recvFirst(t, withHeader(t.Context()), client.FetchX509Bundles, &workloadpb.X509BundlesRequest{})
	require.NoError(t, err)
	// WAPI rule 11: the own trust domain plus federated ones.
	require.Len(t, resp.Bundles, 2)
	own, err := x509bundle.ParseRaw(td, resp.Bundles["spiffe://example.org"])
	require.NoError(t, err)
	assert.True(t, own.HasX509Authority(f.root.Cert()))
	fed, err := x509bundle.ParseRaw(fedTD, resp.Bundles["spiffe://federated.test"])
	require.NoError(t, err)
	assert.True(t, fed.HasX509Authority(f.fedRoot.Cert()))
}

func TestFetchJWTBundles(t *testing.T) {
	f, client := serveWeb(t)

	resp, err := recvFirst(t, withHeader(t.Context()), client.FetchJWTBundles, &workloadpb.JWTBundlesRequest{})
	require.NoError(t, err)
	// WAPI rule 13: JWK Sets with JWT-SVID keys only (the own bundle also
	// has a WIT key, which must not appear).
	require.Len(t, resp.Bundles, 2)
	own, err := jwtbundle.Parse(td, resp.Bundles["spiffe://example.org"])
	require.NoError(t, err)
	assert.Equal(t, []string{f.jwt.KeyID()}, keys(own.JWTAuthorities()))
	assert.NotContains(t, string(resp.Bundles["spiffe://example.org"]), f.witKeyID)
	fed, err := jwtbundle.Parse(fedTD, resp.Bundles["spiffe://federated.test"])
	require.NoError(t, err)
	assert.True(t, fed.HasJWTAuthority(f.fedJWT.KeyID()))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFetchJWTSVID(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, "internal"), f.svid(t, dbID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	bundles := jwtbundle.NewSet(f.own.JWTBundle())

	t.Run("all identities", func(t *testing.T) {
		resp, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"db", "cache"}})
		require.NoError(t, err)
		require.Len(t, resp.Svids, 2)
		assert.Equal(t, webID.String(), resp.Svids[0].SpiffeId)
		assert.Equal(t, "internal", resp.Svids[0].Hint)
		assert.Equal(t, dbID.String(), resp.Svids[1].SpiffeId)
		svid, err := jwtsvid.ParseAndValidate(resp.Svids[0].Svid, bundles, []string{"cache"})
		require.NoError(t, err)
		assert.Equal(t, webID, svid.ID)
		assert.Equal(t, []string{"db", "cache"}, svid.Audience)
	})
	t.Run("one identity", func(t *testing.T) {
		// WAPI rule 12: spiffe_id set gives only that identity.
		resp, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: dbID.String()})
		require.NoError(t, err)
		require.Len(t, resp.Svids, 1)
		assert.Equal(t, dbID.String(), resp.Svids[0].SpiffeId)
	})

	tooMany := make([]string, endpoint.MaxAudiences+1)
	for i := range tooMany {
		tooMany[i] = "aud"
	}
	for _, tt := range []struct {
		name string
		req  *workloadpb.JWTSVIDRequest
		code codes.Code
	}{
		// WAPI rule 12 / E3: audience is mandatory.
		{"no audience", &workloadpb.JWTSVIDRequest{}, codes.InvalidArgument},
		{"empty audience value", &workloadpb.JWTSVIDRequest{Audience: []string{"db", ""}}, codes.InvalidArgument},
		{"too many audience values", &workloadpb.JWTSVIDRequest{Audience: tooMany}, codes.InvalidArgument},
		// E3: an unparsable spiffe_id is InvalidArgument, as in SPIRE.
		{"bad spiffe_id", &workloadpb.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: "spiffe://example.org/../x"}, codes.InvalidArgument},
		{"spiffe_id not a SPIFFE ID", &workloadpb.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: "https://example.org/web"}, codes.InvalidArgument},
		// WAPI rule 12: an identity the caller does not hold.
		{"identity not held", &workloadpb.JWTSVIDRequest{Audience: []string{"db"}, SpiffeId: "spiffe://example.org/other"}, codes.PermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.FetchJWTSVID(withHeader(t.Context()), tt.req)
			requireCode(t, tt.code, err)
		})
	}
}

func TestValidateJWTSVID(t *testing.T) {
	f, client := serveWeb(t)
	ctx := withHeader(t.Context())

	token, err := f.jwt.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: dbID, Audience: []string{"web"}})
	require.NoError(t, err)
	fedToken, err := f.fedJWT.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: spiffeid.RequireFromPath(fedTD, "/api"), Audience: []string{"web"}})
	require.NoError(t, err)
	strangerTD := spiffeid.RequireTrustDomainFromString("stranger.test")
	stranger, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(t)})
	require.NoError(t, err)
	strangerToken, err := stranger.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: spiffeid.RequireFromPath(strangerTD, "/x"), Audience: []string{"web"}})
	require.NoError(t, err)

	t.Run("own trust domain", func(t *testing.T) {
		resp, err := client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: token})
		require.NoError(t, err)
		assert.Equal(t, dbID.String(), resp.SpiffeId)
		claims := resp.Claims.AsMap()
		assert.Equal(t, dbID.String(), claims["sub"])
		assert.Equal(t, []any{"web"}, claims["aud"])
		assert.Contains(t, claims, "exp")
	})
	t.Run("federated trust domain", func(t *testing.T) {
		// WAPI rule 14: against every bundle the caller may use.
		resp, err := client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: fedToken})
		require.NoError(t, err)
		assert.Equal(t, "spiffe://federated.test/api", resp.SpiffeId)
	})
	for _, tt := range []struct {
		name string
		req  *workloadpb.ValidateJWTSVIDRequest
	}{
		// WAPI rule 14 / E3: both fields mandatory.
		{"no audience", &workloadpb.ValidateJWTSVIDRequest{Svid: token}},
		{"no svid", &workloadpb.ValidateJWTSVIDRequest{Audience: "web"}},
		// An invalid token is InvalidArgument, as in SPIRE.
		{"wrong audience", &workloadpb.ValidateJWTSVIDRequest{Audience: "other", Svid: token}},
		{"untrusted trust domain", &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: strangerToken}},
		{"garbage", &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: "not.a.token"}},
		{"tampered", &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: token[:len(token)-4] + "AAAA"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.ValidateJWTSVID(ctx, tt.req)
			requireCode(t, codes.InvalidArgument, err)
		})
	}
	t.Run("oversized request", func(t *testing.T) {
		_, err := client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: strings.Repeat("a", endpoint.MaxRequestSize)})
		requireCode(t, codes.ResourceExhausted, err)
	})
}

// TestLargerRequestsForOtherServices: a server that takes larger requests
// for the services added with Register still holds the Workload API's to
// MaxRequestSize, on unary calls and streams.
func TestLargerRequestsForOtherServices(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler, MaxRequestSize: 4 * endpoint.MaxRequestSize,
		Register: func(grpc.ServiceRegistrar) {}})
	ctx := withHeader(t.Context())
	big := strings.Repeat("a", endpoint.MaxRequestSize)
	_, err := client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: big})
	requireCode(t, codes.ResourceExhausted, err)
	_, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: big})
	requireCode(t, codes.ResourceExhausted, err)
	// What fits is served as before.
	_, err = client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "web", Svid: "not.a.token"})
	requireCode(t, codes.InvalidArgument, err)
	requireFirstX509SVID(t, ctx, client, webID)
}

// call invokes every Workload API method once with ctx and returns the
// error of each (for streams, of the first Recv).
func callAll(ctx context.Context, client workloadpb.WorkloadAPIClient) map[string]error {
	recv := func(s interface{ Recv() (any, error) }, err error) error {
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	out := map[string]error{}
	{
		s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
		out["FetchX509SVID"] = recv(adapt(s), err)
	}
	{
		s, err := client.FetchX509Bundles(ctx, &workloadpb.X509BundlesRequest{})
		out["FetchX509Bundles"] = recv(adapt(s), err)
	}
	{
		s, err := client.FetchJWTBundles(ctx, &workloadpb.JWTBundlesRequest{})
		out["FetchJWTBundles"] = recv(adapt(s), err)
	}
	{
		s, err := client.FetchWITSVID(ctx, &workloadpb.WITSVIDRequest{})
		out["FetchWITSVID"] = recv(adapt(s), err)
	}
	{
		s, err := client.FetchWITBundles(ctx, &workloadpb.WITBundlesRequest{})
		out["FetchWITBundles"] = recv(adapt(s), err)
	}
	_, out["FetchJWTSVID"] = client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"a"}})
	_, out["ValidateJWTSVID"] = client.ValidateJWTSVID(ctx, &workloadpb.ValidateJWTSVIDRequest{Audience: "a", Svid: "x.y.z"})
	return out
}

type anyStream[T any] struct{ s grpc.ServerStreamingClient[T] }

func (a anyStream[T]) Recv() (any, error) {
	if a.s == nil {
		return nil, nil
	}
	return a.s.Recv()
}

func adapt[T any](s grpc.ServerStreamingClient[T]) anyStream[T] { return anyStream[T]{s} }

func TestSecurityHeader(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	for _, wit := range []bool{false, true} {
		client, _ := serve(t, endpoint.Config{Handler: f.handler, WIT: wit})
		for _, tt := range []struct {
			name string
			md   metadata.MD
		}{
			// WE rule 6 / E1: the header is checked first on every method.
			{"missing", nil},
			{"wrong value", metadata.Pairs(workloadpb.HeaderKey, "yes")},
			{"wrong case", metadata.Pairs(workloadpb.HeaderKey, "True")},
			{"two values", metadata.Pairs(workloadpb.HeaderKey, "true", workloadpb.HeaderKey, "true")},
		} {
			ctx := metadata.NewOutgoingContext(t.Context(), tt.md)
			for method, err := range callAll(ctx, client) {
				t.Run(tt.name+"/"+method, func(t *testing.T) {
					requireCode(t, codes.InvalidArgument, err)
					assert.Contains(t, err.Error(), "security header missing from request")
				})
			}
		}
	}
}

func TestNoIdentity(t *testing.T) {
	f := newFixture(t)
	// Only another user has an identity.
	require.NoError(t, f.handler.Set("other", f.snapshot(f.svid(t, webID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler, WIT: true})
	// E4: no identity means PermissionDenied on every method, bundles too.
	for method, err := range callAll(withHeader(t.Context()), client) {
		t.Run(method, func(t *testing.T) {
			requireCode(t, codes.PermissionDenied, err)
		})
	}
}

func TestWITDisabled(t *testing.T) {
	_, client := serveWeb(t)
	// WIT rule 17 / WAPI rule 1: a server without the profile answers
	// Unimplemented.
	errs := callAll(withHeader(t.Context()), client)
	requireCode(t, codes.Unimplemented, errs["FetchWITSVID"])
	requireCode(t, codes.Unimplemented, errs["FetchWITBundles"])
}

func TestWIT(t *testing.T) {
	f := newFixture(t)
	snap := f.snapshot(f.svid(t, webID, ""))
	snap.WITSVIDs = []endpoint.WITSVID{
		{ID: webID, Token: "web.token.sig", Key: `{"kty":"EC"}`, Hint: "a"},
		{ID: dbID, Token: "db.token.sig", Key: `{"kty":"EC"}`, Hint: "b"},
	}
	require.NoError(t, f.handler.Set(f.uid, snap))
	client, _ := serve(t, endpoint.Config{Handler: f.handler, WIT: true})
	ctx := withHeader(t.Context())

	resp, err := recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 2)
	assert.Equal(t, "spiffe://example.org/web", resp.Svids[0].SpiffeId)
	assert.Equal(t, "web.token.sig", resp.Svids[0].WitSvid)
	assert.Equal(t, `{"kty":"EC"}`, resp.Svids[0].WitSvidKey)
	assert.Equal(t, "a", resp.Svids[0].Hint)

	// WIT rule 17: spiffe_id selects one identity.
	resp, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: dbID.String()})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 1)
	assert.Equal(t, dbID.String(), resp.Svids[0].SpiffeId)

	_, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: "spiffe://example.org/none"})
	requireCode(t, codes.PermissionDenied, err)

	_, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: "not an id"})
	requireCode(t, codes.InvalidArgument, err)

	bresp, err := recvFirst(t, ctx, client.FetchWITBundles, &workloadpb.WITBundlesRequest{})
	require.NoError(t, err)
	// Only the own trust domain has WIT keys.
	require.Len(t, bresp.Bundles, 1)
	assert.Contains(t, bresp.Bundles["spiffe://example.org"], `"kid":"wit-1"`)
}

func TestIdentityRemovedEndsStream(t *testing.T) {
	f, client := serveWeb(t)
	ctx := withHeader(t.Context())

	x509s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	_, err = x509s.Recv()
	require.NoError(t, err)
	bundles, err := client.FetchJWTBundles(ctx, &workloadpb.JWTBundlesRequest{})
	require.NoError(t, err)
	_, err = bundles.Recv()
	require.NoError(t, err)

	// WAPI rule 10, E5: entitlement gone ends the stream with
	// PermissionDenied.
	require.NoError(t, f.handler.Set(f.uid, nil))
	_, err = x509s.Recv()
	requireCode(t, codes.PermissionDenied, err)
	_, err = bundles.Recv()
	requireCode(t, codes.PermissionDenied, err)
}

func TestIdentityWithoutX509SVIDs(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot()))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	ctx := withHeader(t.Context())
	// WAPI rule 10: no X509-SVID is PermissionDenied, while the bundles are
	// still served (rule 11).
	_, err := recvFirst(t, ctx, client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	requireCode(t, codes.PermissionDenied, err)
	_, err = recvFirst(t, ctx, client.FetchX509Bundles, &workloadpb.X509BundlesRequest{})
	require.NoError(t, err)
}

func TestIdentityAddedLater(t *testing.T) {
	f := newFixture(t)
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	ctx := withHeader(t.Context())

	_, err := recvFirst(t, ctx, client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	requireCode(t, codes.PermissionDenied, err)

	// WAPI rule 10: the client may call again; registration may lag.
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	requireFirstX509SVID(t, ctx, client, webID)
}

func TestRotation(t *testing.T) {
	f := newFixture(t)
	first := f.svid(t, webID, "")
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(first)))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	ctx := withHeader(t.Context())

	x509s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	jwts, err := client.FetchJWTBundles(ctx, &workloadpb.JWTBundlesRequest{})
	require.NoError(t, err)
	leaf := func() []byte {
		resp, err := x509s.Recv()
		require.NoError(t, err)
		return resp.Svids[0].X509Svid
	}
	// WAPI rule 4: the first message goes out at once.
	require.True(t, bytes.HasPrefix(leaf(), first.Certificates[0].Raw))
	firstJWT, err := jwts.Recv()
	require.NoError(t, err)

	// A rotation pushes a new message with the new SVID.
	second := f.svid(t, webID, "")
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(second)))
	require.True(t, bytes.HasPrefix(leaf(), second.Certificates[0].Raw))

	// E5: a new Snapshot with the same content sends nothing; the next
	// message the stream yields is the third SVID, not a repeat.
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(second)))
	third := f.svid(t, webID, "")
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(third)))
	require.True(t, bytes.HasPrefix(leaf(), third.Certificates[0].Raw))

	// The JWT bundles never changed: the bundle stream stays silent until
	// they do (SPIRE suppresses identical bundle messages too).
	require.NoError(t, f.own.AddJWTAuthority("new-key", f.fedJWT.PublicKey()))
	// f.own is shared by the old snapshots, so build a fresh one.
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(third)))
	next, err := jwts.Recv()
	require.NoError(t, err)
	assert.Len(t, firstJWT.Bundles, 2)
	assert.Contains(t, string(next.Bundles["spiffe://example.org"]), "new-key")
	assert.NotContains(t, string(firstJWT.Bundles["spiffe://example.org"]), "new-key")
}

func TestPeerCredentials(t *testing.T) {
	f := newFixture(t)
	h := &recordingHandler{MemoryHandler: f.handler, callers: make(chan endpoint.Caller, 10)}
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	client, path := serve(t, endpoint.Config{Handler: h})
	_, err := recvFirst(t, withHeader(t.Context()), client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)

	// WE rule 5: the caller is identified out of band, from the kernel
	// (SO_PEERCRED), without its participation. The client runs in this
	// process, so it is us.
	c := <-h.callers
	assert.True(t, c.HasCredentials())
	assert.Equal(t, os.Getpid(), c.PID)
	assert.Equal(t, os.Getuid(), c.UID)
	assert.Equal(t, os.Getgid(), c.GID)
	assert.Equal(t, "unix", c.Addr.Network())

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o770), fi.Mode().Perm())
}

// recordingHandler passes the callers it sees to a channel.
type recordingHandler struct {
	*endpoint.MemoryHandler
	callers chan endpoint.Caller
}

func (h *recordingHandler) Subscribe(ctx context.Context, c endpoint.Caller) (endpoint.Subscription, error) {
	h.callers <- c
	return h.MemoryHandler.Subscribe(ctx, c)
}

func TestKeyByUID(t *testing.T) {
	// A test cannot switch to another user, so a different UID is tested
	// the other way round: the view belongs to another UID, and this
	// process, whose UID the kernel reports, must not get it.
	f := newFixture(t)
	other := strconv.Itoa(os.Getuid() + 1)
	require.NoError(t, f.handler.Set(other, f.snapshot(f.svid(t, dbID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	ctx := withHeader(t.Context())
	_, err := recvFirst(t, ctx, client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	requireCode(t, codes.PermissionDenied, err)

	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	requireFirstX509SVID(t, ctx, client, webID)

	assert.Equal(t, "", endpoint.KeyByUID(endpoint.Caller{PID: -1, UID: -1, GID: -1}))
	assert.Equal(t, "0", endpoint.KeyByUID(endpoint.Caller{PID: 1, UID: 0, GID: 0}))
}

func TestTCP(t *testing.T) {
	f := newFixture(t)
	h := &recordingHandler{MemoryHandler: f.handler, callers: make(chan endpoint.Caller, 10)}
	// A TCP caller has no kernel credentials: KeyByUID files it under "".
	require.NoError(t, f.handler.Set("", f.snapshot(f.svid(t, webID, ""))))
	srv, err := endpoint.New(endpoint.Config{Handler: h})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	client := dial(t, lis.Addr().String())
	requireFirstX509SVID(t, withHeader(t.Context()), client, webID)
	c := <-h.callers
	assert.False(t, c.HasCredentials())
	assert.Equal(t, -1, c.UID)
	assert.Equal(t, "tcp", c.Addr.Network())
	assert.Equal(t, attest.Workload{PID: -1}, c.Workload(), "nothing to attest")
}

func TestServeStops(t *testing.T) {
	noLeaks := leaktest.Check(t)
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	lis, err := endpoint.ListenUnix(path, 0o777)
	require.NoError(t, err)
	srv, err := endpoint.New(endpoint.Config{Handler: f.handler})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()

	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	client := workloadpb.NewWorkloadAPIClient(conn)
	streams := make([]grpc.ServerStreamingClient[workloadpb.X509SVIDResponse], 5)
	for i := range streams {
		streams[i], err = client.FetchX509SVID(withHeader(context.Background()), &workloadpb.X509SVIDRequest{})
		require.NoError(t, err)
		_, err = streams[i].Recv()
		require.NoError(t, err)
	}
	// A client that leaves mid-stream.
	leaving, leave := context.WithCancel(withHeader(context.Background()))
	ls, err := client.FetchX509Bundles(leaving, &workloadpb.X509BundlesRequest{})
	require.NoError(t, err)
	_, err = ls.Recv()
	require.NoError(t, err)
	leave()

	cancel()
	require.NoError(t, <-done)
	for _, s := range streams {
		_, err := s.Recv()
		requireCode(t, codes.Unavailable, err)
	}
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, fs.ErrNotExist, "the socket file is removed")
	conn.Close()
	noLeaks()
}

func TestServeCancelledBefore(t *testing.T) {
	f := newFixture(t)
	srv, err := endpoint.New(endpoint.Config{Handler: f.handler})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, srv.Serve(ctx, lis))
	_, err = lis.Accept()
	require.Error(t, err, "Serve closed the listener")
}

func TestServeListenerFails(t *testing.T) {
	f := newFixture(t)
	srv, err := endpoint.New(endpoint.Config{Handler: f.handler})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lis.Close()
	err = srv.Serve(t.Context(), lis)
	require.ErrorContains(t, err, "endpoint: serve:")
}

func TestClientDisconnectNoLeak(t *testing.T) {
	_, client := serveWeb(t)
	// Warm up the connection so its goroutines are in the baseline.
	_, err := client.FetchJWTSVID(withHeader(t.Context()), &workloadpb.JWTSVIDRequest{Audience: []string{"a"}})
	require.NoError(t, err)
	noLeaks := leaktest.Check(t)
	for range 20 {
		ctx, cancel := context.WithCancel(withHeader(t.Context()))
		s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
		require.NoError(t, err)
		_, err = s.Recv()
		require.NoError(t, err)
		cancel()
		_, err = s.Recv()
		requireCode(t, codes.Canceled, err)
	}
	// Each server-side stream returned: no goroutine is left behind.
	noLeaks()
}

func TestConcurrentStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 streams")
	}
	const conns, perConn = 10, 100
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	_, path := serve(t, endpoint.Config{Handler: f.handler})
	next := f.svid(t, webID, "")
	got := watchers(t, path, conns, perConn)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(next)))
	for range conns * perConn {
		resp := <-got
		require.True(t, bytes.HasPrefix(resp.Svids[0].X509Svid, next.Certificates[0].Raw))
	}
}

// watchers opens conns connections with perConn FetchX509SVID streams each,
// waits for every first message, and returns a channel receiving each
// stream's later messages.
func watchers(t testing.TB, path string, conns, perConn int) <-chan *workloadpb.X509SVIDResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(withHeader(context.Background()))
	got := make(chan *workloadpb.X509SVIDResponse, conns*perConn)
	ready := make(chan error, conns*perConn)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range conns {
		client := dial(t, "unix://"+path)
		for range perConn {
			wg.Go(func() {
				s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
				if err == nil {
					_, err = s.Recv()
				}
				ready <- err
				if err != nil {
					return
				}
				for {
					resp, err := s.Recv()
					if err != nil {
						return
					}
					got <- resp
				}
			})
		}
	}
	for range conns * perConn {
		require.NoError(t, <-ready)
	}
	return got
}

// witHandler is a WITHandler over a MemoryHandler: FetchWITSVID gets the
// view stored under "wit", or err.
type witHandler struct {
	*endpoint.MemoryHandler
	err   error
	calls atomic.Int32
}

func (h *witHandler) SubscribeWIT(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	h.calls.Add(1)
	if h.err != nil {
		return nil, h.err
	}
	return h.MemoryHandler.Subscribe(ctx, endpoint.Caller{UID: -1, PID: caller.PID, GID: caller.GID})
}

// TestWITHandler: with a WITHandler, FetchWITSVID alone watches the
// subscription of SubscribeWIT, whose WIT-SVIDs the other methods' views
// need not carry; a handler that cannot have WIT-SVIDs makes it answer
// Unimplemented, which clients do not retry (WIT rule 17).
func TestWITHandler(t *testing.T) {
	f := newFixture(t)
	plain := f.snapshot(f.svid(t, webID, ""))
	withWIT := f.snapshot(f.svid(t, webID, ""))
	withWIT.WITSVIDs = []endpoint.WITSVID{{ID: webID, Token: "web.token.sig", Key: `{"kty":"EC"}`}}
	h := &witHandler{MemoryHandler: endpoint.NewMemoryHandler(endpoint.MemoryConfig{Key: func(c endpoint.Caller) string {
		if c.UID == -1 {
			return "wit"
		}
		return endpoint.KeyByUID(c)
	}})}
	require.NoError(t, h.Set(f.uid, plain))
	require.NoError(t, h.Set("wit", withWIT))
	client, _ := serve(t, endpoint.Config{Handler: h, WIT: true})
	ctx := withHeader(t.Context())

	resp, err := recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 1)
	assert.Equal(t, "web.token.sig", resp.Svids[0].WitSvid)
	resp, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: webID.String()})
	require.NoError(t, err)
	require.Len(t, resp.Svids, 1)
	assert.Equal(t, int32(2), h.calls.Load())
	_, err = recvFirst(t, ctx, client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	assert.Equal(t, int32(2), h.calls.Load(), "the other methods subscribe as before")

	h.err = fmt.Errorf("no WIT here: %w", endpoint.ErrUnimplemented)
	_, err = recvFirst(t, ctx, client.FetchWITSVID, &workloadpb.WITSVIDRequest{})
	requireCode(t, codes.Unimplemented, err)
	assert.Equal(t, "FetchWITSVID is not offered", status.Convert(err).Message())
}
