package kit_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	exampleTD = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD   = spiffeid.RequireTrustDomainFromString("other.org")
	workload  = spiffeid.RequireFromPath(exampleTD, "/workload")
)

func pkcs8(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return der
}

func uris(t testing.TB, ss ...string) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.URIs = nil
		for _, s := range ss {
			u, err := url.Parse(s)
			require.NoError(t, err)
			c.URIs = append(c.URIs, u)
		}
	}
}

// x509Row is a row of x509-svid.md section C (the must-reject table), with
// the rules the kit must fail on it and the deviations it must report.
type x509Row struct {
	name       string
	svid       kit.X509SVID
	failed     []string
	deviations []string
}

func x509Rows(t *testing.T) []x509Row {
	root := testca.New(t, exampleTD)
	other := testca.New(t, otherTD)
	trusted := map[string][]*x509.Certificate{"example.org": {root.Cert()}}
	var rows []x509Row
	add := func(name string, chain []*x509.Certificate, key crypto.Signer, bundles map[string][]*x509.Certificate, failed []string, deviations ...string) {
		rows = append(rows, x509Row{name: name, svid: kit.X509SVID{Chain: chain, Key: pkcs8(t, key), Bundles: bundles}, failed: failed, deviations: deviations})
	}
	leaf := func(ca *testca.CA, mod func(*x509.Certificate)) ([]*x509.Certificate, crypto.Signer) {
		if mod == nil {
			return ca.NewLeaf(t, workload)
		}
		return ca.NewLeaf(t, workload, testca.WithTemplate(mod))
	}
	c, k := leaf(root, nil)
	add("well-formed leaf", c, k, trusted, nil)
	c, k = leaf(root, uris(t, "spiffe://example.org"))
	add("leaf ID without path", c, k, trusted, []string{"X509 rule 2"})
	c, k = leaf(root, func(c *x509.Certificate) { c.KeyUsage = 0 })
	add("leaf without keyUsage", c, k, trusted, []string{"X509 rule 6", "X509 rule 8"})
	c, k = leaf(root, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })
	add("leaf keyUsage keyEncipherment only", c, k, trusted, []string{"X509 rule 8"})
	c, k = leaf(root, func(c *x509.Certificate) { c.IsCA = true })
	add("leaf cA true", c, k, trusted, []string{"X509 rule 4"})
	c, k = leaf(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign })
	add("leaf keyUsage keyCertSign", c, k, trusted, []string{"X509 rule 8"})
	c, k = leaf(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCRLSign })
	add("leaf keyUsage cRLSign", c, k, trusted, []string{"X509 rule 8"})
	c, k = leaf(root, uris(t, "spiffe://example.org/workload", "spiffe://example.org/other"))
	add("two spiffe URI SANs", c, k, trusted, []string{"X509 rule 1"})
	c, k = leaf(root, uris(t, "spiffe://example.org/workload", "https://example.org/x"))
	add("spiffe and https URI SANs", c, k, trusted, []string{"X509 rule 1"})
	c, k = leaf(root, func(c *x509.Certificate) { c.URIs = nil; c.DNSNames = []string{"workload.example.org"} })
	add("no URI SAN", c, k, trusted, []string{"X509 rule 1"})
	c, k = leaf(root, uris(t, "https://example.org/workload"))
	add("only URI SAN is https", c, k, trusted, []string{"X509 rule 1"})
	c, k = leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	add("EKU serverAuth only", c, k, trusted, []string{"X509 rule 9b"})
	c, k = leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning} })
	add("EKU codeSigning only", c, k, trusted, []string{"X509 rule 9b"})
	c, k = leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = nil })
	add("no EKU", c, k, trusted, nil, "X509 rule 9a")
	c, k = leaf(root, func(c *x509.Certificate) { c.DNSNames = []string{"workload.example.org"} })
	add("extra DNS SAN", c, k, trusted, nil)
	c, k = leaf(root, func(c *x509.Certificate) { c.Subject = pkix.Name{} })
	add("empty subject, critical SAN", c, k, trusted, nil)
	c, k = leaf(root, uris(t, "spiffe://other.org/workload"))
	add("leaf in other.org signed by example.org root, no other.org bundle", c, k, trusted, []string{"X509 rule 21"})
	c, k = leaf(other, nil)
	add("leaf in example.org signed by another trust domain's root", c, k,
		map[string][]*x509.Certificate{"example.org": {root.Cert()}, "other.org": {other.Cert()}}, []string{"X509 rule 21"})
	c, k = leaf(root, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	})
	add("expired leaf", c, k, trusted, []string{"X509 rule 21"})

	inter := root.NewIntermediate(t)
	c, k = leaf(inter, nil)
	add("leaf and intermediate", c, k, trusted, nil)
	add("needed intermediate not presented", c[:1], k, trusted, []string{"X509 rule 21"})
	lower := inter.NewIntermediate(t)
	c, k = leaf(lower, nil)
	add("intermediates out of order", []*x509.Certificate{c[0], c[2], c[1]}, k, trusted, []string{"X509 rule 15"})

	bad := root.NewIntermediate(t, testca.WithTemplate(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature }))
	c, k = leaf(bad, nil)
	add("intermediate without keyCertSign", c, k, trusted, []string{"X509 rule 7", "X509 rule 21"})
	bad = root.NewIntermediate(t, testca.WithTemplate(func(c *x509.Certificate) { c.IsCA = false }))
	c, k = leaf(bad, nil)
	add("intermediate with cA false", c, k, trusted, []string{"X509 rule 4", "X509 rule 21"})
	bad = root.NewIntermediate(t, testca.WithTemplate(uris(t, "spiffe://example.org/intermediate")))
	c, k = leaf(bad, nil)
	add("intermediate whose SPIFFE ID has a path", c, k, trusted, []string{"X509 rule 11b"})
	bad = root.NewIntermediate(t, testca.WithTemplate(func(c *x509.Certificate) { c.URIs = nil }))
	c, k = leaf(bad, nil)
	add("intermediate without SPIFFE ID", c, k, trusted, nil, "X509 rule 11a")
	bad = root.NewIntermediate(t, testca.WithTemplate(func(c *x509.Certificate) { c.PermittedURIDomains = []string{"example.org"} }))
	c, k = bad.NewLeaf(t, spiffeid.RequireFromString("spiffe://evil.org/workload"))
	add("intermediate constrained to example.org, leaf in evil.org", c, k,
		map[string][]*x509.Certificate{"evil.org": {root.Cert()}}, []string{"X509 rule 21"})
	upper := root.NewIntermediate(t, testca.WithTemplate(func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = 0, true }))
	lower = upper.NewIntermediate(t)
	c, k = leaf(lower, nil)
	add("intermediate pathLen 0 with another intermediate below", c, k, trusted, []string{"X509 rule 21"})

	c, _ = leaf(root, nil)
	add("private key of another leaf", c, testca.NewECKey(t), trusted, []string{"X509 rule 15"})
	return rows
}

func TestX509MustRejectTable(t *testing.T) {
	for _, row := range x509Rows(t) {
		t.Run(row.name, func(t *testing.T) {
			r := kit.NewReport(kit.ModeX509, row.name)
			r.CheckX509SVID(row.svid, time.Now())
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", text(t, r))
			assert.Equal(t, len(row.failed) > 0, r.Failed())
		})
	}
}

func TestX509KeyNotPKCS8(t *testing.T) {
	root := testca.New(t, exampleTD)
	chain, key := root.NewLeaf(t, workload)
	sec1, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	r := kit.NewReport(kit.ModeX509, "sec1")
	r.CheckX509SVID(kit.X509SVID{Chain: chain, Key: sec1}, time.Now())
	assert.Equal(t, []string{"X509 rule 15"}, r.FailedRules())
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["X509 rule 21"], "no bundle given")

	r = kit.NewReport(kit.ModeX509, "empty")
	r.CheckX509SVID(kit.X509SVID{}, time.Now())
	assert.Equal(t, []string{"X509 rule 15"}, r.FailedRules())
}

func TestParseX509SVIDPEM(t *testing.T) {
	root := testca.New(t, exampleTD)
	chain, key := root.NewIntermediate(t).NewLeaf(t, workload)
	var file []byte
	for _, c := range chain {
		file = append(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(t, key)})...)
	got, der, err := kit.ParseX509SVIDPEM(file)
	require.NoError(t, err)
	assert.Len(t, got, 2)
	assert.Equal(t, pkcs8(t, key), der)

	_, err = kit.ParseCertificatesPEM(file)
	assert.ErrorContains(t, err, "private key among")
	roots, err := kit.ParseCertificatesPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert().Raw}))
	require.NoError(t, err)
	assert.Len(t, roots, 1)

	for name, bad := range map[string][]byte{
		"empty":         nil,
		"not PEM":       []byte("hello"),
		"trailing":      append(append([]byte{}, file...), "junk"...),
		"other block":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
		"bad cert":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}),
		"two keys":      append(append([]byte{}, file...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...),
		"only key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(t, key)}),
		"bad in bundle": pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}}),
	} {
		_, _, err := kit.ParseX509SVIDPEM(bad)
		assert.Error(t, err, name)
		_, err = kit.ParseCertificatesPEM(bad)
		assert.Error(t, err, name)
	}
}

func TestCheckX509Authorities(t *testing.T) {
	root := testca.New(t, exampleTD)
	inter := root.NewIntermediate(t)
	noURI := testca.New(t, exampleTD, testca.WithTemplate(func(c *x509.Certificate) { c.URIs = nil }))
	r := kit.NewReport(kit.ModeX509, "authorities")
	r.CheckX509Authorities("example.org", []*x509.Certificate{root.Cert(), inter.Cert(), noURI.Cert()})
	assert.Empty(t, r.FailedRules())
	assert.Equal(t, []string{"X509 rule 11a", "X509 rule 14"}, deviations(r), "an intermediate in a bundle is not self-signed")
}
