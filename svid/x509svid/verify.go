package x509svid

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxChainLength is the largest number of certificates, leaf included, that
// [Verify] and [ParseAndVerify] accept in a presented chain. Real SPIFFE
// hierarchies are a few levels deep; the bound stops a peer from making path
// building parse and try an arbitrary number of certificates.
const MaxChainLength = 16

// Verify verifies an X509-SVID chain using the X.509 bundle source. It
// returns the SPIFFE ID of the X509-SVID and one or more chains back to a root
// in the bundle.
//
// certs is the presented chain, leaf first (X509 rule 15); it must hold
// between 1 and [MaxChainLength] certificates. Verify enforces X509 rules
// 16-22:
//   - the leaf has exactly one URI SAN, and it is a SPIFFE ID (rules 16, 17);
//   - that ID has a path (rule 18). This is stricter than go-spiffe, whose
//     Verify accepts a leaf identified as the trust domain itself;
//   - the leaf is not a CA and has neither keyCertSign nor cRLSign (rule 19);
//   - the chain is validated per RFC 5280 by crypto/x509 with only the
//     authorities of the bundle for the leaf ID's trust domain as roots and
//     the rest of certs as intermediates (rules 20, 21). A bundle source that
//     fails, or answers with a bundle of another trust domain, fails
//     verification; roots are never pooled across trust domains;
//   - extended key usages are not checked (x509.ExtKeyUsageAny, as go-spiffe)
//     and no host name is matched (rules 22, 23).
//
// After the leaf's ID is known, errors are returned along with that ID so that
// callers can log who failed. Authorization on the ID is the caller's job.
func Verify(certs []*x509.Certificate, bundleSource x509bundle.Source, opts ...VerifyOption) (spiffeid.ID, [][]*x509.Certificate, error) {
	var cfg verifyConfig
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case len(certs) == 0:
		return spiffeid.ID{}, nil, errors.New("x509svid: empty certificates chain")
	case len(certs) > MaxChainLength:
		return spiffeid.ID{}, nil, fmt.Errorf("x509svid: certificate chain too long: %d certificates, the maximum is %d", len(certs), MaxChainLength)
	case bundleSource == nil:
		return spiffeid.ID{}, nil, errors.New("x509svid: bundleSource is required")
	}
	for _, c := range certs {
		if c == nil {
			return spiffeid.ID{}, nil, errors.New("x509svid: nil certificate in chain")
		}
	}

	leaf := certs[0]
	id, err := idFromCert(leaf) // X509 rules 16, 17
	if err != nil {
		return spiffeid.ID{}, nil, fmt.Errorf("x509svid: could not get leaf SPIFFE ID: %w", err)
	}
	switch {
	case id.Path() == "": // X509 rule 18, stricter than go-spiffe
		return id, nil, errors.New("x509svid: leaf certificate SPIFFE ID must have a non-root path")
	case leaf.IsCA: // X509 rule 19
		return id, nil, errors.New("x509svid: leaf certificate with CA flag set to true")
	case leaf.KeyUsage&x509.KeyUsageCertSign != 0: // X509 rule 19
		return id, nil, errors.New("x509svid: leaf certificate with KeyCertSign key usage")
	case leaf.KeyUsage&x509.KeyUsageCRLSign != 0: // X509 rule 19
		return id, nil, errors.New("x509svid: leaf certificate with KeyCrlSign key usage")
	}

	// X509 rule 20: the leaf ID's trust domain, and nothing else.
	td := id.TrustDomain()
	bundle, err := bundleSource.GetX509BundleForTrustDomain(td)
	switch {
	case err != nil:
		return id, nil, fmt.Errorf("x509svid: could not get X509 bundle: %w", err)
	case bundle == nil:
		return id, nil, fmt.Errorf("x509svid: could not get X509 bundle: no bundle for trust domain %q", td)
	case bundle.TrustDomain() != td:
		return id, nil, fmt.Errorf("x509svid: could not get X509 bundle: got bundle for trust domain %q, want %q", bundle.TrustDomain(), td)
	}

	// X509 rule 21. Roots must never be nil: a nil pool would make
	// crypto/x509 fall back to the system roots.
	roots := x509.NewCertPool()
	for _, c := range bundle.X509Authorities() {
		roots.AddCert(c)
	}
	var intermediates *x509.CertPool
	if len(certs) > 1 {
		intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			intermediates.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   cfg.now,
		// X509 rule 23: EKU is the issuer's business, as in go-spiffe.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return id, nil, fmt.Errorf("x509svid: could not verify leaf certificate: %w", err)
	}
	return id, chains, nil
}

// ParseAndVerify parses and verifies an X509-SVID chain using the X.509
// bundle source. It returns the SPIFFE ID of the X509-SVID and one or more
// chains back to a root in the bundle.
//
// rawCerts holds one ASN.1 DER certificate per element, leaf first, as in
// tls.Config.VerifyPeerCertificate. More than [MaxChainLength] elements are
// rejected before any is parsed. Verification is that of [Verify].
func ParseAndVerify(rawCerts [][]byte, bundleSource x509bundle.Source, opts ...VerifyOption) (spiffeid.ID, [][]*x509.Certificate, error) {
	if len(rawCerts) > MaxChainLength {
		return spiffeid.ID{}, nil, fmt.Errorf("x509svid: certificate chain too long: %d certificates, the maximum is %d", len(rawCerts), MaxChainLength)
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return spiffeid.ID{}, nil, fmt.Errorf("x509svid: unable to parse certificate: %w", err)
		}
		certs[i] = c
	}
	return Verify(certs, bundleSource, opts...)
}

// IDFromCert extracts the SPIFFE ID from the URI SAN of the provided
// certificate. It returns an error if the certificate does not have exactly
// one URI SAN (X509 rule 16) or if that URI is not a well-formed SPIFFE ID
// (X509 rule 17). It does not require the ID to have a path.
func IDFromCert(cert *x509.Certificate) (spiffeid.ID, error) {
	if err := checkURISANs(cert); err != nil {
		return spiffeid.ID{}, fmt.Errorf("x509svid: %w", err)
	}
	return spiffeid.FromURI(cert.URIs[0])
}

// idFromCert is IDFromCert without the package prefix on its own errors, for
// callers that wrap them in a prefixed message of their own. Errors from
// spiffeid carry that package's prefix.
func idFromCert(cert *x509.Certificate) (spiffeid.ID, error) {
	if err := checkURISANs(cert); err != nil {
		return spiffeid.ID{}, err
	}
	return spiffeid.FromURI(cert.URIs[0])
}

func checkURISANs(cert *x509.Certificate) error {
	switch {
	case cert == nil:
		return errors.New("nil certificate")
	case len(cert.URIs) == 0:
		return errors.New("certificate contains no URI SAN")
	case len(cert.URIs) > 1:
		return errors.New("certificate contains more than one URI SAN")
	}
	return nil
}
