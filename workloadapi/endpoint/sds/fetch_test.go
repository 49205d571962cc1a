package sds_test

import (
	"crypto/x509"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

func TestSecretTypeURL(t *testing.T) {
	require.Equal(t, "type.googleapis.com/"+string((&tlsv3.Secret{}).ProtoReflect().Descriptor().FullName()), sds.SecretTypeURL)
}

func TestNew(t *testing.T) {
	h := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	_, err := sds.New(sds.Config{})
	require.ErrorContains(t, err, "handler is required")
	for _, cfg := range []sds.Config{
		{Handler: h, DefaultSVIDName: "ROOTCA"},
		{Handler: h, DefaultBundleName: "ALL"},
		{Handler: h, DefaultAllBundlesName: "default"},
		{Handler: h, DefaultSVIDName: "x", DefaultBundleName: "x", DefaultAllBundlesName: "y"},
	} {
		_, err := sds.New(cfg)
		require.ErrorContains(t, err, "must differ")
	}
	_, err = sds.New(sds.Config{Handler: h, DefaultSVIDName: "svid", DefaultBundleName: "bundle", DefaultAllBundlesName: "bundles"})
	require.NoError(t, err)
}

// TestFetchEveryName asks FetchSecrets, over a real unix socket, for every
// kind of resource name, as an old Envoy (trusted_ca) and a recent one
// (SPIFFE validator).
func TestFetchEveryName(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web, db := f.svid(t, webID), f.svid(t, dbID)
	f.set(t, web, db)
	client := f.serve(t, sds.Config{}, endpoint.Config{})

	t.Run("default", func(t *testing.T) {
		resp, err := fetch(t, client, nil, "default")
		require.NoError(t, err)
		require.Equal(t, sds.SecretTypeURL, resp.TypeUrl)
		require.Empty(t, resp.VersionInfo, "a fetch has no version")
		require.Empty(t, resp.Nonce, "a fetch has no nonce")
		got := secrets(t, resp.Resources)
		require.ElementsMatch(t, []string{"default"}, names(got))
		requireSVID(t, web, got["default"])
	})
	t.Run("SPIFFE IDs", func(t *testing.T) {
		resp, err := fetch(t, client, nil, dbID.String(), webID.String())
		require.NoError(t, err)
		got := secrets(t, resp.Resources)
		require.ElementsMatch(t, []string{dbID.String(), webID.String()}, names(got))
		requireSVID(t, db, got[dbID.String()])
		requireSVID(t, web, got[webID.String()])
	})
	t.Run("bundles as trusted_ca", func(t *testing.T) {
		for _, node := range []*corev3.Node{nil, envoy(17)} {
			resp, err := fetch(t, client, node, "ROOTCA", "spiffe://example.org", "federated.test", "spiffe://federated.test")
			require.NoError(t, err)
			got := secrets(t, resp.Resources)
			require.Len(t, got, 4)
			requireTrustedCA(t, f.own, got["ROOTCA"])
			requireTrustedCA(t, f.own, got["spiffe://example.org"])
			requireTrustedCA(t, f.federated, got["federated.test"])
			requireTrustedCA(t, f.federated, got["spiffe://federated.test"])
		}
	})
	t.Run("bundles as SPIFFE validators", func(t *testing.T) {
		for _, node := range []*corev3.Node{envoy(18), envoy(36)} {
			resp, err := fetch(t, client, node, "ROOTCA", "example.org", "spiffe://federated.test", "ALL")
			require.NoError(t, err)
			got := secrets(t, resp.Resources)
			require.Len(t, got, 4)
			requireValidator(t, got["ROOTCA"], f.own)
			requireValidator(t, got["example.org"], f.own)
			requireValidator(t, got["spiffe://federated.test"], f.federated)
			requireValidator(t, got["ALL"], f.own, f.federated)
		}
	})
	t.Run("no names: everything", func(t *testing.T) {
		resp, err := fetch(t, client, envoy(30))
		require.NoError(t, err)
		got := secrets(t, resp.Resources)
		require.ElementsMatch(t, []string{"spiffe://example.org", "spiffe://federated.test", webID.String(), dbID.String()}, names(got))
		requireValidator(t, got["spiffe://federated.test"], f.federated)
		requireSVID(t, db, got[dbID.String()])
		// The own bundle first, the default SVID before the others.
		var order []string
		for _, s := range secrets(t, resp.Resources[:1]) {
			order = append(order, s.Name)
		}
		require.Equal(t, []string{"spiffe://example.org"}, order)
	})
	t.Run("a name twice", func(t *testing.T) {
		resp, err := fetch(t, client, nil, "default", "default", "ROOTCA")
		require.NoError(t, err)
		require.Len(t, resp.Resources, 2)
	})
	t.Run("ALL needs the validator", func(t *testing.T) {
		_, err := fetch(t, client, nil, "ALL")
		requireCode(t, codes.InvalidArgument, err)
		require.ErrorContains(t, err, "SPIFFE certificate validator")
	})
	t.Run("names the caller has nothing for", func(t *testing.T) {
		for _, name := range []string{
			"spiffe://example.org/other", // another workload's ID
			"spiffe://other.test",        // a trust domain not federated with
			"other.test",                 //
			"Example.org",                // not a trust domain name as written
			"spiffe://example.org/",      // nor a trust domain ID
			"root",                       // no such name
			"",                           // the empty name is a name
			strings.Repeat("a", 1<<10),   // long
			"spiffe://example.org/web/x", // a path below an ID it holds
		} {
			_, err := fetch(t, client, nil, "default", name)
			requireCode(t, codes.InvalidArgument, err)
			require.ErrorContains(t, err, "workload is not authorized for the requested identities")
		}
	})
	t.Run("a wrong type URL", func(t *testing.T) {
		_, err := client.FetchSecrets(testCtx(t), &discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", ResourceNames: []string{"default"}})
		requireCode(t, codes.InvalidArgument, err)
		// No type URL is taken as the secret's.
		resp, err := client.FetchSecrets(testCtx(t), &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
		require.NoError(t, err)
		require.Len(t, resp.Resources, 1)
	})
	t.Run("too many names", func(t *testing.T) {
		many := make([]string, sds.MaxResourceNames+1)
		for i := range many {
			many[i] = "default"
		}
		_, err := fetch(t, client, nil, many...)
		requireCode(t, codes.InvalidArgument, err)
		_, err = fetch(t, client, nil, many[1:]...)
		require.NoError(t, err)
	})
}

func TestFetchDisableSPIFFECertValidation(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	meta := func(v *structpb.Value) *corev3.Node {
		n := envoy(30)
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"disable_spiffe_cert_validation": v}}
		return n
	}
	enabled := f.serve(t, sds.Config{}, endpoint.Config{})
	disabled := f.serve(t, sds.Config{DisableSPIFFECertValidation: true}, endpoint.Config{})
	for _, tc := range []struct {
		name      string
		client    int // 0: enabled, 1: disabled
		node      any
		validator bool
	}{
		{"enabled", 0, envoy(30), true},
		{"disabled by the configuration", 1, envoy(30), false},
		{"disabled by the node (bool)", 0, meta(structpb.NewBoolValue(true)), false},
		{"disabled by the node (string)", 0, meta(structpb.NewStringValue("true")), false},
		{"enabled by the node (bool)", 1, meta(structpb.NewBoolValue(false)), true},
		{"enabled by the node (string)", 1, meta(structpb.NewStringValue("false")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := enabled
			if tc.client == 1 {
				client = disabled
			}
			resp, err := fetch(t, client, tc.node.(*corev3.Node), "ROOTCA")
			require.NoError(t, err)
			got := secrets(t, resp.Resources)
			if tc.validator {
				requireValidator(t, got["ROOTCA"], f.own)
			} else {
				requireTrustedCA(t, f.own, got["ROOTCA"])
			}
		})
	}
}

// TestFetchCustomNames serves SPIRE's options under other names: the
// defaults are then plain unknown names.
func TestFetchCustomNames(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web := f.svid(t, webID)
	f.set(t, web)
	client := f.serve(t, sds.Config{DefaultSVIDName: "svid", DefaultBundleName: "bundle", DefaultAllBundlesName: "bundles"}, endpoint.Config{})
	resp, err := fetch(t, client, envoy(30), "svid", "bundle", "bundles")
	require.NoError(t, err)
	got := secrets(t, resp.Resources)
	requireSVID(t, web, got["svid"])
	requireValidator(t, got["bundle"], f.own)
	requireValidator(t, got["bundles"], f.own, f.federated)
	for _, name := range []string{"default", "ROOTCA", "ALL"} {
		_, err := fetch(t, client, envoy(30), name)
		requireCode(t, codes.InvalidArgument, err)
	}
}

// TestFetchNoIdentity: a caller without an identity gets what the
// Workload API answers it, PermissionDenied.
func TestFetchNoIdentity(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	client := f.serve(t, sds.Config{}, endpoint.Config{})
	for _, names := range [][]string{{"default"}, {"ROOTCA"}, nil} {
		_, err := fetch(t, client, nil, names...)
		requireCode(t, codes.PermissionDenied, err)
		require.ErrorContains(t, err, "no identity issued")
	}
	// A view without SVIDs: bundles only, and "default" is not there.
	require.NoError(t, f.handler.Set(f.uid, &endpoint.Snapshot{TrustDomain: td, Bundles: []*spiffebundle.Bundle{f.own}}))
	resp, err := fetch(t, client, nil, "ROOTCA")
	require.NoError(t, err)
	requireTrustedCA(t, f.own, secrets(t, resp.Resources)["ROOTCA"])
	_, err = fetch(t, client, nil, "default")
	requireCode(t, codes.InvalidArgument, err)
	_, err = fetch(t, client, envoy(30), "ALL")
	require.NoError(t, err)
}

// TestRequestSize: an Envoy's request, with a large node description, fits
// an endpoint that serves SDS, not the Workload API's default bound.
func TestRequestSize(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	node := envoy(30)
	for i := range 2000 {
		node.Extensions = append(node.Extensions, &corev3.Extension{Name: strings.Repeat("x", 40) + string(rune('a'+i%26)), Category: "envoy.filters.network"})
	}
	resp, err := fetch(t, f.serve(t, sds.Config{}, endpoint.Config{}), node, "default")
	require.NoError(t, err)
	require.Len(t, resp.Resources, 1)
	_, err = fetch(t, f.serve(t, sds.Config{}, endpoint.Config{MaxRequestSize: endpoint.MaxRequestSize}), node, "default")
	requireCode(t, codes.ResourceExhausted, err)
}

// TestFetchRawSVIDs serves SVIDs as an issuer keeps them (DER and PKCS#8,
// endpoint.RawX509SVID); a trust domain whose bundle has no X.509
// authority has no validation context.
func TestFetchRawSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web, db := f.svid(t, webID), f.svid(t, dbID)
	raw := func(s *x509svid.SVID) *endpoint.RawX509SVID {
		key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
		require.NoError(t, err)
		r := &endpoint.RawX509SVID{ID: s.ID, PrivateKey: key}
		for _, c := range s.Certificates {
			r.Certificates = append(r.Certificates, c.Raw)
		}
		return r
	}
	jwtOnly := spiffebundle.New(spiffeid.RequireTrustDomainFromString("jwt.test"))
	require.NoError(t, jwtOnly.AddJWTAuthority("k", testca.NewECKey(t).Public()))
	require.NoError(t, f.handler.Set(f.uid, &endpoint.Snapshot{
		TrustDomain:  td,
		RawX509SVIDs: []*endpoint.RawX509SVID{raw(web), raw(db), raw(web)},
		Bundles:      []*spiffebundle.Bundle{f.own, jwtOnly, f.federated},
	}))
	client := f.serve(t, sds.Config{}, endpoint.Config{})
	resp, err := fetch(t, client, envoy(30), "default", dbID.String(), "ALL")
	require.NoError(t, err)
	got := secrets(t, resp.Resources)
	requireSVID(t, web, got["default"])
	requireSVID(t, db, got[dbID.String()])
	requireValidator(t, got["ALL"], f.own, f.federated)
	_, err = fetch(t, client, envoy(30), "jwt.test")
	requireCode(t, codes.InvalidArgument, err)
	resp, err = fetch(t, client, envoy(30))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"spiffe://example.org", "spiffe://federated.test", webID.String(), dbID.String()}, names(secrets(t, resp.Resources)))
}
