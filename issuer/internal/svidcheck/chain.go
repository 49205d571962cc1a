package svidcheck

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Chain checks certs, what a Signer returned for entry e and key, before
// the issuer serves it: at least the leaf and the CA that signed it, at
// most x509svid.MaxChainLength certificates, none nil; a leaf that is no
// CA, names e's SPIFFE ID, certifies key, was signed by the second
// certificate and has not expired at now.
func Chain(e registry.Entry, key crypto.Signer, certs []*x509.Certificate, now time.Time) error {
	if len(certs) < 2 || len(certs) > x509svid.MaxChainLength {
		return fmt.Errorf("the signer returned %d certificates; want the leaf and its CA, at most %d", len(certs), x509svid.MaxChainLength)
	}
	for _, c := range certs {
		if c == nil {
			return errors.New("the signer returned a nil certificate")
		}
	}
	leaf := certs[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("the signer returned a leaf without a SPIFFE ID: %w", err)
	}
	if id != e.SPIFFEID {
		return fmt.Errorf("the signer returned a leaf for %s, want %s", id, e.SPIFFEID)
	}
	if !publickey.Equal(key.Public(), leaf.PublicKey) {
		return errors.New("the signer returned a leaf for another key")
	}
	if leaf.IsCA {
		return errors.New("the signer returned a CA certificate as the leaf")
	}
	if err := leaf.CheckSignatureFrom(certs[1]); err != nil {
		return fmt.Errorf("the signer returned a leaf its second certificate did not sign: %w", err)
	}
	if !now.Before(leaf.NotAfter) {
		return fmt.Errorf("the signer returned a leaf that expired at %v", leaf.NotAfter)
	}
	return nil
}

// Saved checks an X509-SVID saved for entry e, given as the DER of its
// chain (the leaf first), its private key as PKCS#8 and the leaf's dates
// as saved: as Chain checks a new one, with the key it holds, that the
// dates are the leaf's, and that the chain verifies with bundle at now.
// An error never tells of the key.
func Saved(e registry.Entry, chain [][]byte, pkcs8 []byte, notBefore, notAfter time.Time, bundle *spiffebundle.Bundle, now time.Time) error {
	certs := make([]*x509.Certificate, len(chain))
	for k, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", k, err)
		}
		certs[k] = c
	}
	parsed, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return errors.New("the key does not parse") // no detail of a secret
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return errors.New("the key cannot sign")
	}
	if err := Chain(e, key, certs, now); err != nil {
		return err
	}
	if !certs[0].NotBefore.Equal(notBefore) || !certs[0].NotAfter.Equal(notAfter) {
		return errors.New("its dates are not the leaf's")
	}
	if _, _, err := x509svid.Verify(certs, bundle.X509Bundle(), x509svid.WithTime(now)); err != nil {
		return fmt.Errorf("its chain does not verify with the bundle: %w", err)
	}
	return nil
}
