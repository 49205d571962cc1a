package sds

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// FuzzResolve reads resource names as the server does: each name resolves
// to one kind, a SPIFFE ID or trust domain exactly as written, and a
// request for names gives each distinct name once, found or missing.
func FuzzResolve(f *testing.F) {
	for _, seed := range []string{
		"default", "ROOTCA", "ALL", "spiffe://example.org", "example.org", "spiffe://example.org/web",
		"spiffe://federated.test", "federated.test", "spiffe://example.org/", "Example.org", "", "*",
		"spiffe://example.org/web/../db", "spiffe://example.org:8080", "spiffe://user@example.org/web",
		"default\x00", strings.Repeat("a.", 200),
	} {
		f.Add(seed, "default")
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	fed := spiffeid.RequireTrustDomainFromString("federated.test")
	root, fedRoot := testca.New(f, td), testca.New(f, fed)
	chain, key := root.NewLeaf(f, spiffeid.RequireFromPath(td, "/web"))
	snap := &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: spiffeid.RequireFromPath(td, "/web"), Certificates: chain, PrivateKey: key}},
		Bundles: []*spiffebundle.Bundle{
			spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Cert()}),
			spiffebundle.FromX509Authorities(fed, []*x509.Certificate{fedRoot.Cert()}),
		},
	}
	s, err := New(Config{Handler: endpoint.NewMemoryHandler(endpoint.MemoryConfig{})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, name := range []string{a, b} {
			r := s.names.resolve(name)
			switch r.kind {
			case kindSVID:
				if r.id.String() != name || r.id.Path() == "" {
					t.Fatalf("%q resolved to the SVID %q", name, r.id)
				}
			case kindBundle:
				if name != r.td.Name() && name != r.td.IDString() {
					t.Fatalf("%q resolved to the trust domain %q", name, r.td)
				}
			case kindDefaultSVID, kindOwnBundle, kindAll:
				if name != "default" && name != "ROOTCA" && name != "ALL" {
					t.Fatalf("%q resolved to a default name", name)
				}
			}
		}
		for _, validator := range []bool{false, true} {
			res, err := s.build(snap, []string{a, b, a}, validator)
			if err != nil {
				if !validator && (a == "ALL" || b == "ALL") {
					continue
				}
				t.Fatalf("build(%q, %q): %v", a, b, err)
			}
			var got []string
			for _, r := range res.found {
				got = append(got, r.name)
			}
			got = append(got, res.missing...)
			want := []string{a}
			if b != a {
				want = append(want, b)
			}
			if !slices.Equal(got, want) && !slices.Equal(got, []string{b, a}) {
				t.Fatalf("build(%q, %q) gave %q", a, b, got)
			}
		}
	})
}
