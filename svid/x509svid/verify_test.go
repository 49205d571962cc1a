package x509svid_test

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD  = spiffeid.RequireTrustDomainFromString("other.org")
	evilTD   = spiffeid.RequireTrustDomainFromString("evil.org")
	leafID   = spiffeid.RequireFromPath(td, "/workload")
	otherID  = spiffeid.RequireFromPath(otherTD, "/workload")
	evilID   = spiffeid.RequireFromPath(evilTD, "/workload")
	tdOnlyID = td.ID()
)

func uris(t *testing.T, ss ...string) []*url.URL {
	t.Helper()
	out := make([]*url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		require.NoError(t, err)
		out = append(out, u)
	}
	return out
}

func tmpl(fn func(*x509.Certificate)) testca.Option { return testca.WithTemplate(fn) }

// TestVerify is the must-reject table of x509-svid.md section C, plus the
// bounds Verify adds.
func TestVerify(t *testing.T) {
	root := testca.New(t, td)
	other := testca.New(t, otherTD)
	set := x509bundle.NewSet(root.X509Bundle())

	tests := []struct {
		name    string
		chain   func(t *testing.T) []*x509.Certificate
		bundles x509bundle.Source
		opts    []x509svid.VerifyOption
		wantID  spiffeid.ID
		wantErr string
	}{
		{
			name:   "well-formed leaf chaining to the trust domain's root", // X509 rules 16-22
			chain:  func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, leafID); return c },
			wantID: leafID,
		},
		{
			name:    "leaf ID without path", // X509 rule 18, stricter than go-spiffe
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, tdOnlyID); return c },
			wantID:  tdOnlyID,
			wantErr: "x509svid: leaf certificate SPIFFE ID must have a non-root path",
		},
		{
			name: "leaf without key usage extension", // X509 rule 23: not the verifier's business
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) { c.KeyUsage = 0 }))
				return c
			},
			wantID: leafID,
		},
		{
			name: "leaf key usage keyEncipherment only", // X509 rule 23
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }))
				return c
			},
			wantID: leafID,
		},
		{
			name: "leaf cA TRUE", // X509 rule 19
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) { c.IsCA = true }))
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: leaf certificate with CA flag set to true",
		},
		{
			name: "leaf key usage keyCertSign", // X509 rule 19
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.KeyUsage |= x509.KeyUsageCertSign
				}))
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: leaf certificate with KeyCertSign key usage",
		},
		{
			name: "leaf key usage cRLSign", // X509 rule 19
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.KeyUsage |= x509.KeyUsageCRLSign
				}))
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: leaf certificate with KeyCrlSign key usage",
		},
		{
			name: "two spiffe URI SANs", // X509 rule 16
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.URIs = uris(t, "spiffe://example.org/a", "spiffe://example.org/b")
				}))
				return c
			},
			wantErr: "x509svid: could not get leaf SPIFFE ID: certificate contains more than one URI SAN",
		},
		{
			name: "spiffe and https URI SANs", // X509 rule 16
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.URIs = uris(t, "spiffe://example.org/a", "https://example.org/a")
				}))
				return c
			},
			wantErr: "x509svid: could not get leaf SPIFFE ID: certificate contains more than one URI SAN",
		},
		{
			name: "no URI SAN", // X509 rule 16
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, spiffeid.ID{}, tmpl(func(c *x509.Certificate) { c.DNSNames = []string{"example.org"} }))
				return c
			},
			wantErr: "x509svid: could not get leaf SPIFFE ID: certificate contains no URI SAN",
		},
		{
			name: "only URI SAN is https", // X509 rule 17
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) { c.URIs = uris(t, "https://example.org/a") }))
				return c
			},
			wantErr: "x509svid: could not get leaf SPIFFE ID: spiffeid: scheme is missing or invalid",
		},
		{
			name: "EKU serverAuth only", // X509 rule 23: EKU not enforced
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				}))
				return c
			},
			wantID: leafID,
		},
		{
			name: "EKU codeSigning only", // X509 rule 23
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
				}))
				return c
			},
			wantID: leafID,
		},
		{
			name: "extra DNS SAN", // X509 rules 1, 22
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) { c.DNSNames = []string{"not-checked.example"} }))
				return c
			},
			wantID: leafID,
		},
		{
			name:    "leaf of other.org signed by example.org root, no other.org bundle", // X509 rule 20
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, otherID); return c },
			wantID:  otherID,
			wantErr: "x509svid: could not get X509 bundle: ",
		},
		{
			name:    "leaf of example.org signed by other.org root, both bundles known", // X509 rule 20: never pool roots
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := other.NewLeaf(t, leafID); return c },
			bundles: x509bundle.NewSet(root.X509Bundle(), other.X509Bundle()),
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "expired leaf", // X509 rule 21
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.NotBefore = time.Now().Add(-2 * time.Hour)
					c.NotAfter = time.Now().Add(-time.Hour)
				}))
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "expired leaf verified at a time it was valid", // X509 rule 21: injected clock
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID, tmpl(func(c *x509.Certificate) {
					c.NotBefore = time.Now().Add(-2 * time.Hour)
					c.NotAfter = time.Now().Add(-50 * time.Minute)
				}))
				return c
			},
			opts:   []x509svid.VerifyOption{x509svid.WithTime(time.Now().Add(-55 * time.Minute))},
			wantID: leafID,
		},
		{
			name:    "valid leaf verified after it expires", // X509 rule 21: injected clock
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, leafID); return c },
			opts:    []x509svid.VerifyOption{x509svid.WithTime(time.Now().Add(2 * time.Hour))},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name:   "leaf and intermediate", // X509 rules 15, 21
			chain:  func(t *testing.T) []*x509.Certificate { c, _ := root.NewIntermediate(t).NewLeaf(t, leafID); return c },
			wantID: leafID,
		},
		{
			name: "root presented in the chain", // X509 rule 15: harmless
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID)
				return append(c, root.Cert())
			},
			wantID: leafID,
		},
		{
			name: "needed intermediate not presented", // X509 rule 21
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewIntermediate(t).NewLeaf(t, leafID)
				return c[:1]
			},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "intermediate without keyCertSign", // X509 rule 21
			chain: func(t *testing.T) []*x509.Certificate {
				inter := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign }))
				c, _ := inter.NewLeaf(t, leafID)
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "intermediate with cA FALSE", // X509 rule 21
			chain: func(t *testing.T) []*x509.Certificate {
				inter := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) { c.IsCA = false }))
				c, _ := inter.NewLeaf(t, leafID)
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "intermediate whose ID has a path", // X509 rule 23: issuer violation, not checked
			chain: func(t *testing.T) []*x509.Certificate {
				inter := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) { c.URIs = uris(t, "spiffe://example.org/ca") }))
				c, _ := inter.NewLeaf(t, leafID)
				return c
			},
			wantID: leafID,
		},
		{
			name: "leaf of evil.org under an unconstrained intermediate, root trusted for evil.org", // control for the next row
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewIntermediate(t).NewLeaf(t, evilID)
				return c
			},
			bundles: x509bundle.FromX509Authorities(evilTD, []*x509.Certificate{root.Cert()}),
			wantID:  evilID,
		},
		{
			name: "intermediate permitted example.org, leaf in evil.org", // X509 rules 13, 21
			chain: func(t *testing.T) []*x509.Certificate {
				inter := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) {
					c.PermittedURIDomains = []string{"example.org"}
				}))
				c, _ := inter.NewLeaf(t, evilID)
				return c
			},
			bundles: x509bundle.FromX509Authorities(evilTD, []*x509.Certificate{root.Cert()}),
			wantID:  evilID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "intermediate pathLen 0 with one more intermediate below", // X509 rules 5, 21
			chain: func(t *testing.T) []*x509.Certificate {
				inter := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) {
					c.MaxPathLen, c.MaxPathLenZero = 0, true
				}))
				c, _ := inter.NewIntermediate(t).NewLeaf(t, leafID)
				return c
			},
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
		{
			name: "chain longer than MaxChainLength", // bounded cost
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID)
				for len(c) <= x509svid.MaxChainLength {
					c = append(c, root.Cert())
				}
				return c
			},
			wantErr: "x509svid: certificate chain too long: 17 certificates, the maximum is 16",
		},
		{
			name:    "empty chain",
			chain:   func(*testing.T) []*x509.Certificate { return nil },
			wantErr: "x509svid: empty certificates chain",
		},
		{
			name: "nil certificate in chain",
			chain: func(t *testing.T) []*x509.Certificate {
				c, _ := root.NewLeaf(t, leafID)
				return append(c, nil)
			},
			wantErr: "x509svid: nil certificate in chain",
		},
		{
			name:    "bundle source answers for another trust domain", // X509 rule 20
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, leafID); return c },
			bundles: fixedSource{bundle: x509bundle.FromX509Authorities(otherTD, []*x509.Certificate{root.Cert()})},
			wantID:  leafID,
			wantErr: `x509svid: could not get X509 bundle: got bundle for trust domain "other.org", want "example.org"`,
		},
		{
			name:    "bundle source answers nil without error", // X509 rule 20
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, leafID); return c },
			bundles: fixedSource{},
			wantID:  leafID,
			wantErr: `x509svid: could not get X509 bundle: no bundle for trust domain "example.org"`,
		},
		{
			name:    "empty bundle", // X509 rule 21: no anchor, and never the system roots
			chain:   func(t *testing.T) []*x509.Certificate { c, _ := root.NewLeaf(t, leafID); return c },
			bundles: x509bundle.New(td),
			wantID:  leafID,
			wantErr: "x509svid: could not verify leaf certificate: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain := tt.chain(t)
			bundles := tt.bundles
			if bundles == nil {
				bundles = set
			}
			id, chains, err := x509svid.Verify(chain, bundles, tt.opts...)
			assert.Equal(t, tt.wantID, id)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, chains)
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, chains)
			for _, c := range chains {
				assert.Same(t, chain[0], c[0], "verified chains start at the leaf")
				assert.True(t, c[len(c)-1].Equal(root.Cert()), "verified chains end at the root")
			}

			raw := make([][]byte, len(chain))
			for i, c := range chain {
				raw[i] = c.Raw
			}
			id2, chains2, err := x509svid.ParseAndVerify(raw, bundles, tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, id, id2)
			assert.Len(t, chains2, len(chains))
		})
	}
}

func TestVerifyArguments(t *testing.T) {
	root := testca.New(t, td)
	chain, _ := root.NewLeaf(t, leafID)

	_, _, err := x509svid.Verify(chain, nil)
	require.EqualError(t, err, "x509svid: bundleSource is required")

	cause := errors.New("source down")
	id, _, err := x509svid.Verify(chain, fixedSource{err: cause})
	require.ErrorIs(t, err, cause)
	assert.Equal(t, leafID, id)

	// The error of crypto/x509 is reachable.
	_, _, err = x509svid.Verify(chain, x509bundle.New(td))
	_, ok := errors.AsType[x509.UnknownAuthorityError](err)
	assert.True(t, ok, "want x509.UnknownAuthorityError in %v", err)
}

func TestParseAndVerify(t *testing.T) {
	root := testca.New(t, td)
	chain, _ := root.NewIntermediate(t).NewLeaf(t, leafID)
	raw := [][]byte{chain[0].Raw, chain[1].Raw}

	id, chains, err := x509svid.ParseAndVerify(raw, root.X509Bundle())
	require.NoError(t, err)
	assert.Equal(t, leafID, id)
	require.Len(t, chains, 1)
	assert.Len(t, chains[0], 3)

	_, _, err = x509svid.ParseAndVerify([][]byte{chain[0].Raw, []byte("garbage")}, root.X509Bundle())
	require.ErrorContains(t, err, "x509svid: unable to parse certificate: ")

	// The bound applies before anything is parsed.
	long := make([][]byte, x509svid.MaxChainLength+1)
	_, _, err = x509svid.ParseAndVerify(long, root.X509Bundle())
	require.EqualError(t, err, "x509svid: certificate chain too long: 17 certificates, the maximum is 16")

	_, _, err = x509svid.ParseAndVerify(nil, root.X509Bundle())
	require.EqualError(t, err, "x509svid: empty certificates chain")
}

func TestIDFromCert(t *testing.T) {
	root := testca.New(t, td)
	chain, _ := root.NewLeaf(t, leafID)
	id, err := x509svid.IDFromCert(chain[0])
	require.NoError(t, err)
	assert.Equal(t, leafID, id)

	// A CA's ID has no path; IDFromCert does not mind (X509 rule 11).
	id, err = x509svid.IDFromCert(root.Cert())
	require.NoError(t, err)
	assert.Equal(t, td.ID(), id)

	noURI, _ := root.NewLeaf(t, spiffeid.ID{})
	_, err = x509svid.IDFromCert(noURI[0])
	require.EqualError(t, err, "x509svid: certificate contains no URI SAN") // X509 rule 16

	_, err = x509svid.IDFromCert(nil)
	require.EqualError(t, err, "x509svid: nil certificate")
}

// fixedSource is an x509bundle.Source with a fixed answer, for sources that
// misbehave.
type fixedSource struct {
	bundle *x509bundle.Bundle
	err    error
}

func (s fixedSource) GetX509BundleForTrustDomain(spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundle, s.err
}
