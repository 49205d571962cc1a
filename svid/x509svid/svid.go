package x509svid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// SVID represents a SPIFFE X509-SVID.
type SVID struct {
	// ID is the SPIFFE ID of the X509-SVID.
	ID spiffeid.ID

	// Certificates are the X.509 certificates of the X509-SVID. The leaf
	// certificate is the X509-SVID certificate. Any remaining certificates
	// (if any) chain the X509-SVID certificate back to a X.509 root for the
	// trust domain.
	Certificates []*x509.Certificate

	// PrivateKey is the private key for the X509-SVID.
	PrivateKey crypto.Signer

	// Hint is an operator-specified string used to provide guidance on how
	// this identity should be used by a workload when more than one SVID is
	// returned.
	Hint string
}

// Load loads the X509-SVID from PEM encoded files on disk, as [Parse] does.
// certFile and keyFile may be the same file.
func Load(certFile, keyFile string) (*SVID, error) {
	certBytes, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot read certificate file: %w", err)
	}
	keyBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot read key file: %w", err)
	}
	return Parse(certBytes, keyBytes)
}

// Parse parses the X509-SVID from PEM blocks containing certificate and key
// bytes. The certificate must be one or more CERTIFICATE PEM blocks with
// ASN.1 DER, leaf first. The key must be a PRIVATE KEY PEM block with PKCS#8
// ASN.1 DER. Blocks of other types are skipped.
//
// Parse checks the X509-SVID profile but not the chain's signatures or
// validity period (use [Verify] for that): the leaf has exactly one URI SAN,
// a SPIFFE ID with a path, cA FALSE, digitalSignature and neither keyCertSign
// nor cRLSign (X509 rules 2, 8, 16-19); every other certificate has cA TRUE
// and keyCertSign (X509 rules 4, 7); the key is an RSA, ECDSA or Ed25519 key
// matching the leaf's public key.
func Parse(certBytes, keyBytes []byte) (*SVID, error) {
	certs, err := pemutil.ParseCertificates(certBytes)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot parse PEM encoded certificate: %w", err)
	}
	key, err := pemutil.ParsePrivateKey(keyBytes)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot parse PEM encoded private key: %w", err)
	}
	return newSVID(certs, key)
}

// ParseRaw parses the X509-SVID from certificate and key bytes. The
// certificate must be ASN.1 DER (concatenated with no intermediate padding if
// there is more than one certificate), leaf first. The key must be PKCS#8
// ASN.1 DER. It checks what [Parse] checks.
func ParseRaw(certBytes, keyBytes []byte) (*SVID, error) {
	certs, err := x509.ParseCertificates(certBytes)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot parse DER encoded certificate: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBytes)
	if err != nil {
		return nil, fmt.Errorf("x509svid: cannot parse DER encoded private key: %w", err)
	}
	return newSVID(certs, key)
}

// Marshal marshals the X509-SVID and returns PEM encoded blocks for the SVID
// (CERTIFICATE blocks, leaf first) and private key (a PKCS#8 PRIVATE KEY
// block).
func (s *SVID) Marshal() ([]byte, []byte, error) {
	if len(s.Certificates) == 0 {
		return nil, nil, errors.New("x509svid: no certificates to marshal")
	}
	keyBytes, err := pemutil.EncodePKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("x509svid: cannot encode private key: %w", err)
	}
	return pemutil.EncodeCertificates(s.Certificates), keyBytes, nil
}

// MarshalRaw marshals the X509-SVID and returns ASN.1 DER for the
// certificates (concatenated with no intermediate padding) and PKCS#8 ASN.1
// DER for the private key.
func (s *SVID) MarshalRaw() ([]byte, []byte, error) {
	if len(s.Certificates) == 0 {
		return nil, nil, errors.New("x509svid: no certificates to marshal")
	}
	key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("x509svid: cannot marshal private key: %w", err)
	}
	n := 0
	for _, c := range s.Certificates {
		n += len(c.Raw)
	}
	certs := make([]byte, 0, n)
	for _, c := range s.Certificates {
		certs = append(certs, c.Raw...)
	}
	return certs, key, nil
}

// GetX509SVID returns the X509-SVID. It implements the [Source] interface.
func (s *SVID) GetX509SVID() (*SVID, error) {
	return s, nil
}

func newSVID(certs []*x509.Certificate, key crypto.PrivateKey) (*SVID, error) {
	id, err := validateCertificates(certs)
	if err != nil {
		return nil, fmt.Errorf("x509svid: certificate validation failed: %w", err)
	}
	signer, err := validatePrivateKey(key, certs[0])
	if err != nil {
		return nil, fmt.Errorf("x509svid: private key validation failed: %w", err)
	}
	return &SVID{ID: id, Certificates: certs, PrivateKey: signer}, nil
}

// validateCertificates checks the X509-SVID profile of a chain of one's own
// and returns the leaf's SPIFFE ID.
func validateCertificates(certs []*x509.Certificate) (spiffeid.ID, error) {
	if len(certs) == 0 {
		return spiffeid.ID{}, errors.New("no certificates found")
	}
	leaf := certs[0]
	id, err := idFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("cannot get leaf certificate SPIFFE ID: %w", err)
	}
	switch {
	case id.Path() == "": // X509 rule 2
		return spiffeid.ID{}, errors.New("leaf certificate SPIFFE ID must have a non-root path")
	case leaf.IsCA: // X509 rule 4
		return spiffeid.ID{}, errors.New("leaf certificate must not have CA flag set to true")
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0: // X509 rule 8
		return spiffeid.ID{}, errors.New("leaf certificate must have 'digitalSignature' set as key usage")
	case leaf.KeyUsage&x509.KeyUsageCertSign != 0: // X509 rule 8
		return spiffeid.ID{}, errors.New("leaf certificate must not have 'keyCertSign' set as key usage")
	case leaf.KeyUsage&x509.KeyUsageCRLSign != 0: // X509 rule 8
		return spiffeid.ID{}, errors.New("leaf certificate must not have 'cRLSign' set as key usage")
	}
	for _, c := range certs[1:] {
		switch {
		case !c.IsCA: // X509 rule 4
			return spiffeid.ID{}, errors.New("signing certificate must have CA flag set to true")
		case c.KeyUsage&x509.KeyUsageCertSign == 0: // X509 rule 7
			return spiffeid.ID{}, errors.New("signing certificate must have 'keyCertSign' set as key usage")
		}
	}
	return id, nil
}

// validatePrivateKey checks that key is a supported signer for the leaf's
// public key.
func validatePrivateKey(key crypto.PrivateKey, leaf *x509.Certificate) (crypto.Signer, error) {
	if key == nil {
		return nil, errors.New("no private key found")
	}
	var signer crypto.Signer
	switch k := key.(type) {
	case *rsa.PrivateKey:
		signer = k
	case *ecdsa.PrivateKey:
		signer = k
	case ed25519.PrivateKey:
		signer = k
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("leaf certificate does not match private key")
	}
	return signer, nil
}
