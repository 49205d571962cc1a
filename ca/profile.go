package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// backdate is subtracted from "now" to form NotBefore, so that a peer whose
	// clock runs a little behind ours still accepts a fresh certificate.
	backdate = 10 * time.Second

	// maxIDBytes is the longest SPIFFE ID the CA will put in a credential
	// (ID rule 17: generators SHOULD NOT exceed 2048 bytes).
	maxIDBytes = 2048

	// maxCSRBytes bounds the DER size of a CSR before it is parsed. A CSR for an
	// RSA-8192 key with a few extensions fits in well under 4 KiB.
	maxCSRBytes = 32 << 10

	// maxDNSNames bounds the DNS SANs of one X509-SVID.
	maxDNSNames = 100

	// minRSABits and maxRSABits bound the RSA keys the CA certifies or signs with.
	minRSABits = 2048
	maxRSABits = 8192
)

// validateTrustDomain refuses trust domain names that are valid SPIFFE names
// but cannot be carried in an X.509 URI SAN by crypto/x509, which rejects a
// host with an empty label ("a..b", ".a", "a."). Refusing them here gives a
// clear error instead of one from deep inside CreateCertificate.
func validateTrustDomain(td spiffeid.TrustDomain) error {
	if td.IsZero() {
		return errors.New("trust domain is missing")
	}
	name := td.Name()
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("trust domain %q has an empty DNS label", name)
	}
	return nil
}

// validateSVIDID checks the SPIFFE ID of a credential the CA is about to mint.
// issuerTD, when not zero, is the only trust domain the ID may belong to.
// needPath requires a non-root path (X509 rule 2).
func validateSVIDID(id spiffeid.ID, issuerTD spiffeid.TrustDomain, needPath bool) error {
	if id.IsZero() {
		return errors.New("SPIFFE ID is missing")
	}
	// ID rule 17: SHOULD NOT generate IDs longer than 2048 bytes.
	if n := len(id.String()); n > maxIDBytes {
		return fmt.Errorf("SPIFFE ID is %d bytes long, more than the %d allowed", n, maxIDBytes)
	}
	if needPath && id.Path() == "" {
		return fmt.Errorf("SPIFFE ID %q has no path", id)
	}
	if err := validateTrustDomain(id.TrustDomain()); err != nil {
		return err
	}
	if !issuerTD.IsZero() && id.TrustDomain() != issuerTD {
		return fmt.Errorf("SPIFFE ID %q is not a member of the authority's trust domain %q", id, issuerTD)
	}
	return nil
}

// validateDNSNames accepts host names made of letters, digits and inner
// hyphens, 1-63 bytes per label, at most 253 bytes in all, with an optional
// leading "*" label. No trailing dot, no underscore, no IP literal.
func validateDNSNames(names []string) error {
	if len(names) > maxDNSNames {
		return fmt.Errorf("%d DNS names, more than the %d allowed", len(names), maxDNSNames)
	}
	for _, name := range names {
		if err := validateDNSName(name); err != nil {
			return err
		}
	}
	return nil
}

func validateDNSName(name string) error {
	if name == "" {
		return errors.New("DNS name is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("DNS name %.32q... is longer than 253 bytes", name)
	}
	rest := name
	if strings.HasPrefix(rest, "*.") {
		rest = rest[2:]
	}
	for label := range strings.SplitSeq(rest, ".") {
		if !validDNSLabel(label) {
			return fmt.Errorf("DNS name %q is not a valid host name", name)
		}
	}
	return nil
}

func validDNSLabel(label string) bool {
	if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return false
		}
	}
	return true
}

// validateTTL rejects negative lifetimes and returns ttl, or def when ttl is zero.
func validateTTL(ttl, def time.Duration) (time.Duration, error) {
	switch {
	case ttl < 0:
		return 0, fmt.Errorf("TTL %v is negative", ttl)
	case ttl == 0:
		return def, nil
	}
	return ttl, nil
}

// validity returns the NotBefore/NotAfter pair for a certificate minted at now
// with the given lifetime, with NotAfter capped at limit (the issuer's expiry).
func validity(now time.Time, ttl time.Duration, limit time.Time) (time.Time, time.Time, error) {
	notAfter := now.Add(ttl)
	if !limit.IsZero() && notAfter.After(limit) {
		notAfter = limit
	}
	if !notAfter.After(now) {
		return time.Time{}, time.Time{}, fmt.Errorf("authority expired at %s", limit.UTC().Format(time.RFC3339))
	}
	return now.Add(-backdate), notAfter, nil
}

// checkPublicKey accepts the key types the CA certifies: ECDSA on P-256, P-384
// or P-521 (with a valid point), Ed25519, and RSA of 2048 to 8192 bits. It
// returns the key's subject key identifier, computed by RFC 7093 section 2
// method 1: the leftmost 160 bits of the SHA-256 hash of the subjectPublicKey
// BIT STRING value (the encoded point, the raw Ed25519 key, the PKCS#1 RSA
// key).
func checkPublicKey(pub crypto.PublicKey) (skid []byte, err error) {
	var raw []byte
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, errors.New("unsupported ECDSA curve")
		}
		// Bytes also checks that the point is on the curve.
		if raw, err = k.Bytes(); err != nil {
			return nil, fmt.Errorf("invalid ECDSA public key: %w", err)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("invalid Ed25519 public key")
		}
		raw = k
	case *rsa.PublicKey:
		if k.N == nil {
			return nil, errors.New("invalid RSA public key")
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("RSA key size %d is outside %d-%d bits", bits, minRSABits, maxRSABits)
		}
		raw = x509.MarshalPKCS1PublicKey(k)
	case nil:
		return nil, errors.New("public key is missing")
	default:
		return nil, fmt.Errorf("unsupported public key type %T", pub)
	}
	sum := sha256.Sum256(raw)
	return sum[:20], nil
}

// serialNumber returns a random positive serial number that encodes in at most
// 20 octets (RFC 5280 section 4.1.2.2): 159 random bits, never zero.
func serialNumber() (*big.Int, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("cannot generate serial number: %w", err)
	}
	b[0] &= 0x7f // a set top bit would need a 21st (zero) octet in DER
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}

// publicKeyFrom returns the key to certify and its subject key identifier:
// pub, or the key of the PKCS#10 request csr, whose signature is checked. Nothing else is taken from the
// request: its subject, SANs and extensions are ignored on purpose, since the
// identity comes from the caller's registration data, not from the requester.
func publicKeyFrom(pub crypto.PublicKey, csr []byte) (crypto.PublicKey, []byte, error) {
	switch {
	case pub != nil && len(csr) > 0:
		return nil, nil, errors.New("both a public key and a CSR were given")
	case len(csr) > 0:
		if len(csr) > maxCSRBytes {
			return nil, nil, fmt.Errorf("CSR is %d bytes, more than the %d allowed", len(csr), maxCSRBytes)
		}
		req, err := x509.ParseCertificateRequest(csr)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid CSR: %w", err)
		}
		if err := req.CheckSignature(); err != nil {
			return nil, nil, fmt.Errorf("invalid CSR signature: %w", err)
		}
		pub = req.PublicKey
	}
	skid, err := checkPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pub, skid, nil
}

// authorityID extracts the SPIFFE ID of a signing certificate. A certificate
// without URI SANs has none (zero ID). Otherwise it must have exactly one URI
// SAN holding a SPIFFE ID without a path (X509 rules 1 and 11).
func authorityID(cert *x509.Certificate) (spiffeid.ID, error) {
	switch len(cert.URIs) {
	case 0:
		return spiffeid.ID{}, nil
	case 1:
	default:
		return spiffeid.ID{}, errors.New("authority certificate has more than one URI SAN")
	}
	id, err := spiffeid.FromURI(cert.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("authority certificate URI SAN is not a SPIFFE ID: %w", err)
	}
	if id.Path() != "" {
		return spiffeid.ID{}, fmt.Errorf("authority certificate SPIFFE ID %q has a path", id)
	}
	if err := validateTrustDomain(id.TrustDomain()); err != nil {
		return spiffeid.ID{}, err
	}
	return id, nil
}
