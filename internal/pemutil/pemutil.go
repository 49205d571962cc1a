// Package pemutil encodes and decodes the PEM blocks that SVIDs and bundles
// travel in: CERTIFICATE blocks and PKCS#8 PRIVATE KEY blocks.
package pemutil

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

const (
	certType = "CERTIFICATE"
	keyType  = "PRIVATE KEY"
)

// Errors for input that holds no PEM block of the wanted type.
var (
	ErrNoCertificates = errors.New("no CERTIFICATE PEM blocks found")
	ErrNoPrivateKey   = errors.New("no PRIVATE KEY PEM block found")
)

// ParseCertificates decodes every CERTIFICATE block of b, in order. Blocks of
// other types are skipped. Trailing bytes that are not PEM are ignored, as
// encoding/pem does. It fails if a certificate does not parse or if there is no
// certificate at all.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != certType {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cannot parse certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificates
	}
	return certs, nil
}

// EncodeCertificates returns the certificates as consecutive CERTIFICATE
// blocks.
func EncodeCertificates(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: certType, Bytes: c.Raw})...)
	}
	return out
}

// ParsePrivateKey decodes the first PRIVATE KEY (PKCS#8) block of b. The key
// must be usable as a crypto.Signer (RSA, ECDSA or Ed25519).
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, ErrNoPrivateKey
		}
		if block.Type == keyType {
			return ParsePrivateKeyDER(block.Bytes)
		}
	}
}

// ParsePrivateKeyDER parses a PKCS#8 DER private key that must be usable as a
// crypto.Signer.
func ParsePrivateKeyDER(der []byte) (crypto.Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("cannot parse PKCS#8 private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T is not a crypto.Signer", key)
	}
	return signer, nil
}

// EncodePKCS8PrivateKey returns key as a PKCS#8 PRIVATE KEY block.
func EncodePKCS8PrivateKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("cannot marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: der}), nil
}
