package testca

import (
	"crypto/tls"
	"crypto/x509"
	"sync/atomic"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// NewSVID mints an X509-SVID for the SPIFFE ID with the given path in the
// CA's trust domain, as [CA.NewLeaf] does with no options, and adds dnsNames
// as DNS SANs. It fails tb if path is not a valid SPIFFE ID path.
func (ca *CA) NewSVID(tb testing.TB, path string, dnsNames ...string) *x509svid.SVID {
	tb.Helper()
	id, err := spiffeid.FromPath(ca.td, path)
	if err != nil {
		tb.Fatalf("testca: %v", err)
	}
	chain, key := ca.NewLeaf(tb, id, WithTemplate(func(c *x509.Certificate) { c.DNSNames = dnsNames }))
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// RootPool returns a new certificate pool holding only the CA's root, for
// trusting its SVIDs as web certificates.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// TLSCertificate returns s as a TLS certificate: its chain in DER, its
// private key, and Leaf set to its first certificate.
func TLSCertificate(s *x509svid.SVID) *tls.Certificate {
	cert := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, c := range s.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert
}

// X509Source is an x509svid.Source whose SVID a test can swap at any time,
// for instance to simulate rotation. It is safe for concurrent use. The zero
// value returns a nil SVID and no error until [X509Source.Set] is called.
type X509Source struct {
	svid atomic.Pointer[x509svid.SVID]
}

var _ x509svid.Source = (*X509Source)(nil)

// NewX509Source returns a source that starts with s.
func NewX509Source(s *x509svid.SVID) *X509Source {
	src := &X509Source{}
	src.Set(s)
	return src
}

// Set replaces the SVID the source returns.
func (s *X509Source) Set(svid *x509svid.SVID) { s.svid.Store(svid) }

// GetX509SVID returns the current SVID. It never fails.
func (s *X509Source) GetX509SVID() (*x509svid.SVID, error) { return s.svid.Load(), nil }

// SVID returns the current SVID, as GetX509SVID does, for use in assertions.
func (s *X509Source) SVID() *x509svid.SVID { return s.svid.Load() }
