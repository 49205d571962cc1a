package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// CA is a root or intermediate certificate authority for one trust domain. It
// is immutable after creation and safe for concurrent use.
type CA struct {
	td   spiffeid.TrustDomain
	cert *x509.Certificate
	key  crypto.Signer
	// chain is cert followed by its issuers, stopping before the root. It is
	// empty for a root.
	chain []*x509.Certificate
	root  *x509.Certificate
}

// Option changes a certificate minted by [New], [CA.NewIntermediate] or
// [CA.NewLeaf].
type Option interface {
	apply(*config)
}

type config struct {
	key    crypto.Signer
	modify []func(*x509.Certificate)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithKey sets the key pair of the new certificate. The default is a fresh
// ECDSA P-256 key.
func WithKey(key crypto.Signer) Option {
	return optionFunc(func(c *config) { c.key = key })
}

// WithTemplate lets fn change the certificate template after the defaults
// are filled in and just before it is signed: URIs, IsCA and
// BasicConstraintsValid, KeyUsage (0 omits the extension), ExtKeyUsage,
// NotBefore/NotAfter, MaxPathLen/MaxPathLenZero, PermittedURIDomains, DNS
// names and so on. Several WithTemplate options run in order.
func WithTemplate(fn func(tmpl *x509.Certificate)) Option {
	return optionFunc(func(c *config) { c.modify = append(c.modify, fn) })
}

// New creates a self-signed root CA for td. By default its certificate has
// the URI SAN spiffe://<td>, cA TRUE, key usage keyCertSign|cRLSign (X509
// rules 4, 6, 7, 11) and is valid from one hour ago for one day.
func New(tb testing.TB, td spiffeid.TrustDomain, opts ...Option) *CA {
	tb.Helper()
	cfg := newConfig(tb, opts)
	tmpl := caTemplate(td)
	cert := create(tb, tmpl, tmpl, cfg, cfg.key)
	return &CA{td: td, cert: cert, key: cfg.key, root: cert}
}

// NewIntermediate creates a CA signed by ca, in the same trust domain and
// with the same defaults as [New].
func (ca *CA) NewIntermediate(tb testing.TB, opts ...Option) *CA {
	tb.Helper()
	cfg := newConfig(tb, opts)
	cert := create(tb, caTemplate(ca.td), ca.cert, cfg, ca.key)
	chain := append([]*x509.Certificate{cert}, ca.chain...)
	return &CA{td: ca.td, cert: cert, key: cfg.key, chain: chain, root: ca.root}
}

// NewLeaf creates an X509-SVID leaf for id signed by ca. By default the leaf
// has exactly one URI SAN (id), cA FALSE, key usage digitalSignature, EKU
// serverAuth and clientAuth (X509 rules 1, 4, 8, 9) and is valid from one
// hour ago for one hour. It returns the chain (the leaf followed by the
// intermediates up to, not including, the root) and the leaf's private key.
// A zero id gives a leaf without URI SAN.
func (ca *CA) NewLeaf(tb testing.TB, id spiffeid.ID, opts ...Option) ([]*x509.Certificate, crypto.Signer) {
	tb.Helper()
	cfg := newConfig(tb, opts)
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"testca"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	cert := create(tb, tmpl, ca.cert, cfg, ca.key)
	return append([]*x509.Certificate{cert}, ca.chain...), cfg.key
}

// TrustDomain returns the trust domain the CA was created for.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Cert returns the CA's own certificate.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }

// Key returns the CA's private key.
func (ca *CA) Key() crypto.Signer { return ca.key }

// Root returns the self-signed root at the top of the CA's hierarchy (the CA
// itself for a root).
func (ca *CA) Root() *x509.Certificate { return ca.root }

// Chain returns the CA's certificate followed by its issuers, stopping before
// the root: empty for a root. The slice is a copy.
func (ca *CA) Chain() []*x509.Certificate {
	return append([]*x509.Certificate(nil), ca.chain...)
}

// X509Bundle returns a new X.509 bundle for the CA's trust domain holding
// only the root.
func (ca *CA) X509Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.td, []*x509.Certificate{ca.root})
}

func newConfig(tb testing.TB, opts []Option) *config {
	tb.Helper()
	cfg := &config{}
	for _, o := range opts {
		o.apply(cfg)
	}
	if cfg.key == nil {
		cfg.key = NewECKey(tb)
	}
	return cfg
}

func caTemplate(td spiffeid.TrustDomain) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"testca"}, CommonName: td.Name()},
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func create(tb testing.TB, tmpl, parent *x509.Certificate, cfg *config, parentKey crypto.Signer) *x509.Certificate {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatalf("testca: serial: %v", err)
	}
	tmpl.SerialNumber = serial
	// For a root, tmpl is also the parent, so changes reach the issuer too.
	for _, fn := range cfg.modify {
		fn(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, cfg.key.Public(), parentKey)
	if err != nil {
		tb.Fatalf("testca: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testca: parse certificate: %v", err)
	}
	return cert
}

// NewECKey returns a fresh ECDSA P-256 key.
func NewECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testca: generate key: %v", err)
	}
	return key
}
