package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// RootParams describes a self-signed root CA certificate for [CreateRoot].
type RootParams struct {
	// Signer holds the root's private key. Required; its public key must be
	// of a type accepted for X509SVIDParams.PublicKey.
	Signer crypto.Signer

	// TrustDomain is the trust domain the root signs for; its URI SAN is
	// spiffe://<trust domain>. Required, with no empty DNS label.
	TrustDomain spiffeid.TrustDomain

	// TTL is the lifetime. Zero means DefaultX509CATTL.
	TTL time.Duration

	// Subject is the certificate subject. The zero value means O=SPIFFE plus
	// the serial number.
	Subject pkix.Name

	// MaxPathLen and MaxPathLenZero set the pathLenConstraint as in
	// x509.Certificate; the zero values mean no constraint.
	MaxPathLen     int
	MaxPathLenZero bool

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// CreateRoot makes a self-signed root CA certificate for params.TrustDomain
// (X509 rule 14), with the CA profile of [X509Authority.SignX509CA]:
// basicConstraints cA=TRUE and keyUsage keyCertSign|cRLSign (both critical),
// the URI SAN spiffe://<trust domain>, no extKeyUsage, a NotBefore 10 seconds
// in the past. Pass the result with params.Signer to [NewX509Authority] to
// sign with it, and put it in the trust domain's X.509 bundle.
//
// ctx is checked before signing; a signature under way is not interrupted.
func CreateRoot(ctx context.Context, params RootParams) (*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	cert, err := createRoot(&params)
	if err != nil {
		return nil, fmt.Errorf("ca: cannot create root certificate: %w", err)
	}
	return cert, nil
}

func createRoot(p *RootParams) (*x509.Certificate, error) {
	if p.Signer == nil {
		return nil, errors.New("signer is missing")
	}
	if err := validateTrustDomain(p.TrustDomain); err != nil {
		return nil, err
	}
	pub := p.Signer.Public()
	skid, err := checkPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ttl, err := validateTTL(p.TTL, DefaultX509CATTL)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	notBefore, notAfter, err := validity(now(), ttl, time.Time{})
	if err != nil {
		return nil, err
	}
	tmpl, err := caTemplate(p.TrustDomain, skid, p.Subject, p.MaxPathLen, p.MaxPathLenZero, notBefore, notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.AuthorityKeyId = tmpl.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, p.Signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
