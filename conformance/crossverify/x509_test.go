package crossverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// bundles maps trust domain names to root certificates.
type bundles map[string][]*x509.Certificate

func (b bundles) ours(t testing.TB) *x509bundle.Set {
	set := x509bundle.NewSet()
	for td, roots := range b {
		set.Add(x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(td), roots))
	}
	return set
}

func (b bundles) theirs(t testing.TB) *gsx509bundle.Set {
	set := gsx509bundle.NewSet()
	for td, roots := range b {
		set.Add(gsx509bundle.FromX509Authorities(gsid.RequireTrustDomainFromString(td), roots))
	}
	return set
}

type verdict int

const (
	reject verdict = iota
	accept
	notApplicable
)

func (v verdict) String() string { return [...]string{"reject", "accept", "n/a"}[v] }

func verdictOf(err error) verdict {
	if err != nil {
		return reject
	}
	return accept
}

// x509Row is one row of x509-svid.md section C.
type x509Row struct {
	name    string
	chain   []*x509.Certificate // leaf first
	key     crypto.Signer       // the leaf's key, for ParseRaw
	bundles bundles
	// ours is the verdict spiffekit's Verify must give (the "spec" column).
	ours verdict
	// gs is go-spiffe's measured Verify verdict; it differs from ours only on
	// rows the specification marks as known differences.
	gs verdict
	// parse is the ParseRaw verdict, identical in both libraries.
	parse verdict
}

func x509Table(t *testing.T) []x509Row {
	const (
		exampleTD = "example.org"
		workload  = "spiffe://example.org/workload"
	)
	root := newRoot(t, exampleTD)
	other := newRoot(t, "other.org")
	trusted := bundles{exampleTD: {root.cert}}

	var rows []x509Row
	add := func(name string, ours, gs, parse verdict, chain []*x509.Certificate, key crypto.Signer, b bundles) {
		rows = append(rows, x509Row{name: name, chain: chain, key: key, bundles: b, ours: ours, gs: gs, parse: parse})
	}
	leafWith := func(is issuer, mod func(*x509.Certificate), uri ...string) ([]*x509.Certificate, crypto.Signer) {
		tmpl := leafTemplate(t, uri...)
		if mod != nil {
			mod(tmpl)
		}
		cert, key := is.leaf(t, tmpl)
		return []*x509.Certificate{cert}, key
	}

	c, k := leafWith(root, nil, workload)
	add("well-formed leaf chaining to the trust domain root", accept, accept, accept, c, k, trusted)

	// X509 rule 18: stricter than go-spiffe's Verify (documented difference).
	c, k = leafWith(root, nil, "spiffe://example.org")
	add("leaf ID without path", reject, accept, reject, c, k, trusted)

	c, k = leafWith(root, func(c *x509.Certificate) { c.KeyUsage = 0 }, workload)
	add("leaf without keyUsage", accept, accept, reject, c, k, trusted) // X509 rules 6, 23

	c, k = leafWith(root, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }, workload)
	add("leaf keyUsage keyEncipherment only", accept, accept, reject, c, k, trusted) // X509 rules 8, 23

	c, k = leafWith(root, func(c *x509.Certificate) { c.IsCA = true }, workload)
	add("leaf cA true", reject, reject, reject, c, k, trusted) // X509 rule 19

	c, k = leafWith(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }, workload)
	add("leaf keyUsage keyCertSign", reject, reject, reject, c, k, trusted) // X509 rule 19

	c, k = leafWith(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCRLSign }, workload)
	add("leaf keyUsage cRLSign", reject, reject, reject, c, k, trusted) // X509 rule 19

	c, k = leafWith(root, nil, workload, "spiffe://example.org/other")
	add("two spiffe URI SANs", reject, reject, reject, c, k, trusted) // X509 rule 16

	c, k = leafWith(root, nil, workload, "https://example.org/x")
	add("spiffe and https URI SANs", reject, reject, reject, c, k, trusted) // X509 rule 16

	c, k = leafWith(root, func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "no-uri"}
		c.DNSNames = []string{"workload.example.org"}
	})
	add("no URI SAN", reject, reject, reject, c, k, trusted) // X509 rule 16

	c, k = leafWith(root, nil, "https://example.org/workload")
	add("only URI SAN is https", reject, reject, reject, c, k, trusted) // X509 rule 17

	c, k = leafWith(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, workload)
	add("EKU serverAuth only", accept, accept, accept, c, k, trusted) // X509 rule 23

	c, k = leafWith(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning} }, workload)
	add("EKU codeSigning only", accept, accept, accept, c, k, trusted) // X509 rule 23

	c, k = leafWith(root, func(c *x509.Certificate) { c.DNSNames = []string{"workload.example.org"} }, workload)
	add("extra DNS SAN", accept, accept, accept, c, k, trusted) // X509 rules 1, 22

	c, k = leafWith(root, nil, "spiffe://other.org/workload")
	add("leaf in other.org signed by example.org root, no other.org bundle", reject, reject, accept, c, k, trusted) // X509 rule 20

	c, k = leafWith(other, nil, workload)
	add("leaf in example.org signed by another trust domain's root", reject, reject, accept, c, k,
		bundles{exampleTD: {root.cert}, "other.org": {other.cert}}) // X509 rule 20

	c, k = leafWith(root, func(c *x509.Certificate) {
		c.NotBefore = time.Now().Add(-2 * time.Hour)
		c.NotAfter = time.Now().Add(-time.Hour)
	}, workload)
	add("expired leaf", reject, reject, accept, c, k, trusted) // X509 rule 21

	inter := root.intermediate(t, caTemplate(t, "intermediate", "spiffe://example.org"))
	c, k = leafWith(inter, nil, workload)
	add("leaf and intermediate", accept, accept, accept, append(c, inter.cert), k, trusted) // X509 rule 15
	add("needed intermediate not presented", reject, reject, accept, c, k, trusted)         // X509 rule 21

	noCertSign := caTemplate(t, "no keyCertSign", "spiffe://example.org")
	noCertSign.KeyUsage = x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	bad := root.intermediate(t, noCertSign)
	c, k = leafWith(bad, nil, workload)
	add("intermediate without keyCertSign", reject, reject, reject, append(c, bad.cert), k, trusted) // X509 rule 21

	notCA := caTemplate(t, "not a CA", "spiffe://example.org")
	notCA.IsCA = false
	bad = root.intermediate(t, notCA)
	c, k = leafWith(bad, nil, workload)
	add("intermediate with cA false", reject, reject, reject, append(c, bad.cert), k, trusted) // X509 rule 21

	bad = root.intermediate(t, caTemplate(t, "with path", "spiffe://example.org/intermediate"))
	c, k = leafWith(bad, nil, workload)
	add("intermediate whose SPIFFE ID has a path", accept, accept, accept, append(c, bad.cert), k, trusted) // X509 rules 11, 23

	constrained := caTemplate(t, "constrained", "spiffe://example.org")
	constrained.PermittedURIDomains = []string{"example.org"}
	bad = root.intermediate(t, constrained)
	c, k = leafWith(bad, nil, "spiffe://evil.org/workload")
	rows = append(rows, x509Row{
		name: "intermediate constrained to example.org, leaf in evil.org", chain: append(c, bad.cert), key: k,
		bundles: bundles{"evil.org": {root.cert}}, ours: reject, gs: reject, parse: notApplicable,
	}) // X509 rule 13

	pathLen0 := caTemplate(t, "pathlen 0", "spiffe://example.org")
	pathLen0.MaxPathLen, pathLen0.MaxPathLenZero = 0, true
	upper := root.intermediate(t, pathLen0)
	lower := upper.intermediate(t, caTemplate(t, "below pathlen 0", "spiffe://example.org"))
	c, k = leafWith(lower, nil, workload)
	add("intermediate pathLen 0 with another intermediate below", reject, reject, accept,
		append(c, lower.cert, upper.cert), k, trusted) // X509 rule 21

	return rows
}

// TestX509MustRejectTable runs x509-svid.md section C through both
// libraries' Verify, ParseAndVerify and ParseRaw.
func TestX509MustRejectTable(t *testing.T) {
	for _, row := range x509Table(t) {
		t.Run(row.name, func(t *testing.T) {
			ourID, ourChains, ourErr := x509svid.Verify(row.chain, row.bundles.ours(t))
			gsID, gsChains, gsErr := gsx509svid.Verify(row.chain, row.bundles.theirs(t))
			assert.Equal(t, row.ours, verdictOf(ourErr), "spiffekit Verify: %v", ourErr)
			assert.Equal(t, row.gs, verdictOf(gsErr), "go-spiffe Verify: %v", gsErr)
			if ourErr != nil {
				assert.True(t, strings.HasPrefix(ourErr.Error(), "x509svid: "), "error prefix: %v", ourErr)
			}
			if ourErr == nil && gsErr == nil {
				assert.Equal(t, gsID.String(), ourID.String())
				assert.Equal(t, chainsRaw(gsChains), chainsRaw(ourChains))
			}

			_, _, ourErr2 := x509svid.ParseAndVerify(rawCerts(row.chain), row.bundles.ours(t))
			assert.Equal(t, verdictOf(ourErr), verdictOf(ourErr2), "spiffekit ParseAndVerify vs Verify: %v", ourErr2)
			_, _, gsErr2 := gsx509svid.ParseAndVerify(rawCerts(row.chain), row.bundles.theirs(t))
			assert.Equal(t, verdictOf(gsErr), verdictOf(gsErr2), "go-spiffe ParseAndVerify vs Verify: %v", gsErr2)

			if row.parse == notApplicable {
				return
			}
			certs, key := concatDER(row.chain), pkcs8(t, row.key)
			ours, ourErr := x509svid.ParseRaw(certs, key)
			gs, gsErr := gsx509svid.ParseRaw(certs, key)
			assert.Equal(t, row.parse, verdictOf(ourErr), "spiffekit ParseRaw: %v", ourErr)
			assert.Equal(t, row.parse, verdictOf(gsErr), "go-spiffe ParseRaw: %v", gsErr)
			if ourErr == nil && gsErr == nil {
				assert.Equal(t, gs.ID.String(), ours.ID.String())
				assert.Equal(t, rawCerts(gs.Certificates), rawCerts(ours.Certificates))
			}
		})
	}
}

func chainsRaw(chains [][]*x509.Certificate) [][][]byte {
	out := make([][][]byte, len(chains))
	for i, c := range chains {
		out[i] = rawCerts(c)
	}
	return out
}

// TestCAMintedSVIDsVerifyWithGoSPIFFE mints root, intermediate and leaf with
// the ca package for several key types and checks that go-spiffe's Verify,
// ParseAndVerify and ParseRaw accept them and agree with ours.
func TestCAMintedSVIDsVerifyWithGoSPIFFE(t *testing.T) {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	gsTD := gsid.RequireTrustDomainFromString("example.org")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	leafKeys := map[string]crypto.Signer{"P-256": newECKey(t), "P-384": p384, "Ed25519": ed, "RSA-2048": rsaKey}

	rootKey, interKey := newECKey(t), newECKey(t)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: rootKey, TrustDomain: td})
	require.NoError(t, err)
	rootCA, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: rootKey, Certificate: root})
	require.NoError(t, err)
	interChain, err := rootCA.SignX509CA(ctx, ca.X509CAParams{PublicKey: interKey.Public()})
	require.NoError(t, err)
	require.Len(t, interChain, 2)
	interCA, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: interKey, Certificate: interChain[0], UpstreamChain: interChain[1:]})
	require.NoError(t, err)

	ours := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	theirs := gsx509bundle.FromX509Authorities(gsTD, []*x509.Certificate{root})

	for name, key := range leafKeys {
		for _, authority := range []struct {
			name string
			ca   *ca.X509Authority
		}{{"root", rootCA}, {"intermediate", interCA}} {
			t.Run(name+" from "+authority.name, func(t *testing.T) {
				id := spiffeid.RequireFromPath(td, "/ns/prod/sa/"+strings.ToLower(name))
				chain, err := authority.ca.SignX509SVID(ctx, ca.X509SVIDParams{
					PublicKey: key.Public(), ID: id, DNSNames: []string{"svc.example.org"},
				})
				require.NoError(t, err)

				gsID, gsChains, err := gsx509svid.Verify(chain, theirs)
				require.NoError(t, err, "go-spiffe Verify")
				ourID, ourChains, err := x509svid.Verify(chain, ours)
				require.NoError(t, err, "spiffekit Verify")
				assert.Equal(t, id.String(), gsID.String())
				assert.Equal(t, gsID.String(), ourID.String())
				assert.Equal(t, chainsRaw(gsChains), chainsRaw(ourChains))

				gsID, _, err = gsx509svid.ParseAndVerify(rawCerts(chain), theirs, gsx509svid.WithTime(time.Now().Add(30*time.Minute)))
				require.NoError(t, err, "go-spiffe ParseAndVerify")
				assert.Equal(t, id.String(), gsID.String())

				gsSVID, err := gsx509svid.ParseRaw(concatDER(chain), pkcs8(t, key))
				require.NoError(t, err, "go-spiffe ParseRaw")
				ourSVID, err := x509svid.ParseRaw(concatDER(chain), pkcs8(t, key))
				require.NoError(t, err, "spiffekit ParseRaw")
				assert.Equal(t, gsSVID.ID.String(), ourSVID.ID.String())
				assert.Equal(t, rawCerts(gsSVID.Certificates), rawCerts(ourSVID.Certificates))

				// PEM written by one library is read by the other.
				gsCerts, gsKey, err := gsSVID.Marshal()
				require.NoError(t, err)
				fromGS, err := x509svid.Parse(gsCerts, gsKey)
				require.NoError(t, err)
				assert.Equal(t, rawCerts(chain), rawCerts(fromGS.Certificates))
				ourCerts, ourKey, err := ourSVID.Marshal()
				require.NoError(t, err)
				fromOurs, err := gsx509svid.Parse(ourCerts, ourKey)
				require.NoError(t, err)
				assert.Equal(t, rawCerts(chain), rawCerts(fromOurs.Certificates))

				gsLeafID, err := gsx509svid.IDFromCert(chain[0])
				require.NoError(t, err)
				ourLeafID, err := x509svid.IDFromCert(chain[0])
				require.NoError(t, err)
				assert.Equal(t, gsLeafID.String(), ourLeafID.String())
			})
		}
	}

	// The minted intermediate is itself acceptable to go-spiffe as a signing
	// certificate: its ID is the trust domain ID (X509 rule 11).
	gsInterID, err := gsx509svid.IDFromCert(interChain[0])
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org", gsInterID.String())
}
