package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// DefaultX509SVIDTTL is the lifetime of an X509-SVID when X509SVIDParams.TTL is zero.
	DefaultX509SVIDTTL = time.Hour

	// DefaultX509CATTL is the lifetime of a CA certificate when
	// X509CAParams.TTL or RootParams.TTL is zero.
	DefaultX509CATTL = 24 * time.Hour
)

// X509AuthorityConfig describes one X.509 signing authority for
// [NewX509Authority]. The struct is copied; the certificates it points to must
// not be modified afterwards.
type X509AuthorityConfig struct {
	// Signer holds the authority's private key. Required. It is used from
	// several goroutines when the authority is, so it must be safe for
	// concurrent use (the standard library's keys are).
	Signer crypto.Signer

	// Certificate is the authority's CA certificate: cA=TRUE, keyUsage with
	// keyCertSign, a non-empty subject, and the public key of Signer.
	// Required. If it carries a URI SAN, it must be exactly one SPIFFE ID
	// without a path (X509 rule 11); the authority then only signs for that
	// ID's trust domain.
	Certificate *x509.Certificate

	// UpstreamChain lists the CA certificates above Certificate, starting
	// with its issuer, that are appended to every chain the authority mints.
	// Nil for a self-signed authority, or when the roots are distributed in
	// bundles only. Each entry must be a CA and sign the one before it.
	UpstreamChain []*x509.Certificate

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// X509Authority signs X509-SVIDs and CA certificates with one CA key and its
// certificate. It is immutable and safe for concurrent use; build one per
// signing key and replace it whole to rotate.
type X509Authority struct {
	signer   crypto.Signer
	cert     *x509.Certificate
	parent   *x509.Certificate // cert, with a SubjectKeyId if it lacked one
	chain    []*x509.Certificate
	id       spiffeid.ID // zero when cert has no URI SAN
	notAfter time.Time   // the earliest NotAfter in chain
	now      func() time.Time
}

// NewX509Authority validates cfg and returns an authority that signs with
// cfg.Signer. It fails when a required field is missing, the certificate is
// not a CA allowed to sign certificates, its key differs from the signer's,
// or the upstream chain does not link up.
func NewX509Authority(cfg X509AuthorityConfig) (*X509Authority, error) {
	if cfg.Signer == nil {
		return nil, errors.New("ca: signer is missing")
	}
	cert := cfg.Certificate
	if cert == nil {
		return nil, errors.New("ca: authority certificate is missing")
	}
	// X509 rules 4, 6, 7: only a CA with keyCertSign may issue certificates.
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, errors.New("ca: authority certificate is not a CA")
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("ca: authority certificate lacks the keyCertSign key usage")
	}
	// RFC 5280 section 4.1.2.4: an issued certificate's issuer name MUST
	// NOT be empty, and it is copied from this subject.
	if len(cert.RawSubject) == 0 || len(cert.Subject.Names) == 0 {
		return nil, errors.New("ca: authority certificate has an empty subject")
	}
	if !publickey.Equal(cfg.Signer.Public(), cert.PublicKey) {
		return nil, errors.New("ca: signer does not match the authority certificate's public key")
	}
	certSKID, err := checkPublicKey(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("ca: authority key: %w", err)
	}
	id, err := authorityID(cert)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}

	chain := make([]*x509.Certificate, 0, 1+len(cfg.UpstreamChain))
	chain = append(chain, cert)
	notAfter := cert.NotAfter
	for i, up := range cfg.UpstreamChain {
		if up == nil {
			return nil, fmt.Errorf("ca: upstream certificate %d is nil", i)
		}
		if !up.BasicConstraintsValid || !up.IsCA || up.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fmt.Errorf("ca: upstream certificate %d is not a CA allowed to sign certificates", i)
		}
		if err := chain[len(chain)-1].CheckSignatureFrom(up); err != nil {
			return nil, fmt.Errorf("ca: upstream certificate %d did not sign the certificate below it: %w", i, err)
		}
		if up.NotAfter.Before(notAfter) {
			notAfter = up.NotAfter
		}
		chain = append(chain, up)
	}

	// Go copies the parent's SubjectKeyId into AuthorityKeyId; give a parent
	// without one a computed identifier so every minted certificate has an
	// AuthorityKeyId. Done once here, not per signature.
	parent := cert
	if len(cert.SubjectKeyId) == 0 {
		c := *cert
		c.SubjectKeyId = certSKID
		parent = &c
	}

	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &X509Authority{
		signer:   cfg.Signer,
		cert:     cert,
		parent:   parent,
		chain:    chain,
		id:       id,
		notAfter: notAfter,
		now:      now,
	}, nil
}

// Certificate returns the authority's CA certificate. It must not be modified.
func (a *X509Authority) Certificate() *x509.Certificate { return a.cert }

// Chain returns a new slice holding the authority's certificate followed by
// its upstream chain, as appended to minted certificates.
func (a *X509Authority) Chain() []*x509.Certificate { return slices.Clone(a.chain) }

// X509SVIDParams describes an X509-SVID for [X509Authority.SignX509SVID].
type X509SVIDParams struct {
	// PublicKey is the key to certify: *ecdsa.PublicKey (P-256, P-384,
	// P-521), ed25519.PublicKey or *rsa.PublicKey (2048-8192 bits). Exactly
	// one of PublicKey and CSR must be set.
	PublicKey crypto.PublicKey

	// CSR is a DER PKCS#10 certificate request. Its signature is checked and
	// only its public key is used: the subject, SANs and extensions it asks
	// for are ignored.
	CSR []byte

	// ID is the SPIFFE ID of the workload. Required. It must have a path
	// (X509 rule 2), be at most 2048 bytes long (ID rule 17), have no empty
	// DNS label in its trust domain name, and belong to the authority's trust
	// domain when the authority certificate has a SPIFFE ID.
	ID spiffeid.ID

	// DNSNames are extra DNS SANs: host names (letters, digits, inner
	// hyphens), optionally starting with a "*." wildcard label; at most 100.
	DNSNames []string

	// TTL is the requested lifetime. Zero means DefaultX509SVIDTTL. NotAfter
	// is capped at the earliest expiry in the authority's chain.
	TTL time.Duration

	// Subject is the certificate subject. The zero value gives an empty
	// subject, and the SAN extension is then marked critical (X509 rule 3).
	Subject pkix.Name

	// KeyUsage adds key usages to digitalSignature, which is always set. Only
	// x509.KeyUsageKeyEncipherment and x509.KeyUsageKeyAgreement are allowed
	// (X509 rule 8).
	KeyUsage x509.KeyUsage
}

// SignX509SVID mints an X509-SVID leaf certificate for params.ID and returns
// the chain leaf first: the leaf, the authority certificate, then the upstream
// chain (X509 rule 15). The certificates after the leaf are shared and must
// not be modified.
//
// The leaf follows X509 rules 1-9: one URI SAN, basicConstraints cA=FALSE
// (critical), keyUsage digitalSignature (critical), extKeyUsage serverAuth and
// clientAuth, a random serial number, a NotBefore 10 seconds in the past, a
// NotAfter no later than the authority's, and subject and authority key
// identifiers.
//
// ctx is checked before signing; a signature already under way is not
// interrupted, since crypto.Signer takes no context.
func (a *X509Authority) SignX509SVID(ctx context.Context, params X509SVIDParams) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	tmpl, pub, err := a.svidTemplate(&params)
	if err != nil {
		return nil, fmt.Errorf("ca: cannot sign X509-SVID: %w", err)
	}
	return a.sign(tmpl, pub)
}

func (a *X509Authority) svidTemplate(p *X509SVIDParams) (*x509.Certificate, crypto.PublicKey, error) {
	if err := validateSVIDID(p.ID, a.id.TrustDomain(), true); err != nil {
		return nil, nil, err
	}
	if err := validateDNSNames(p.DNSNames); err != nil {
		return nil, nil, err
	}
	// X509 rule 8: keyCertSign and cRLSign never go on a leaf.
	if extra := p.KeyUsage &^ (x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement); extra != 0 {
		return nil, nil, fmt.Errorf("key usage %#x is not allowed on an X509-SVID", int(extra))
	}
	ttl, err := validateTTL(p.TTL, DefaultX509SVIDTTL)
	if err != nil {
		return nil, nil, err
	}
	pub, skid, err := publicKeyFrom(p.PublicKey, p.CSR)
	if err != nil {
		return nil, nil, err
	}
	notBefore, notAfter, err := validity(a.now(), ttl, a.notAfter)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	return &x509.Certificate{
		SerialNumber:   serial,
		Subject:        p.Subject,
		NotBefore:      notBefore,
		NotAfter:       notAfter,
		SubjectKeyId:   skid,
		AuthorityKeyId: a.parent.SubjectKeyId,
		// X509 rule 1: exactly one URI SAN.
		URIs:     []*url.URL{p.ID.URL()},
		DNSNames: p.DNSNames, // read, not kept, by CreateCertificate
		// X509 rules 4 and 6: basicConstraints and keyUsage are always
		// present; crypto/x509 marks both critical.
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature | p.KeyUsage,
		// X509 rule 9: both serverAuth and clientAuth.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, pub, nil
}

// X509CAParams describes a CA certificate for [X509Authority.SignX509CA]: the
// signing certificate of a downstream (intermediate) authority.
type X509CAParams struct {
	// PublicKey is the downstream authority's key. Exactly one of PublicKey
	// and CSR must be set; the accepted key types are those of
	// X509SVIDParams.PublicKey.
	PublicKey crypto.PublicKey

	// CSR is a DER PKCS#10 certificate request whose signature is checked
	// and of which only the public key is used.
	CSR []byte

	// TrustDomain is the trust domain of the new CA, whose URI SAN is
	// spiffe://<trust domain> (X509 rule 11). Zero means the authority's own
	// trust domain; otherwise it must equal it. Required when the authority
	// certificate has no SPIFFE ID.
	TrustDomain spiffeid.TrustDomain

	// TTL is the requested lifetime. Zero means DefaultX509CATTL. NotAfter is
	// capped at the earliest expiry in the authority's chain.
	TTL time.Duration

	// Subject is the certificate subject. The zero value means
	// O=SPIFFE plus the serial number, so that successive CAs have
	// distinct names (RFC 5280 requires a non-empty issuer name in the
	// certificates the new CA will sign).
	Subject pkix.Name

	// MaxPathLen and MaxPathLenZero set the pathLenConstraint exactly as in
	// x509.Certificate: MaxPathLen > 0 sets it; MaxPathLen 0 with
	// MaxPathLenZero sets 0 (the new CA may sign only leaves); otherwise
	// there is no constraint. It must be below the authority's own
	// constraint, if it has one.
	MaxPathLen     int
	MaxPathLenZero bool
}

// SignX509CA mints a signing certificate for a downstream CA and returns the
// chain leaf first: the new certificate, the authority certificate, then the
// upstream chain. The new certificate has basicConstraints cA=TRUE and keyUsage
// keyCertSign|cRLSign (both critical), one URI SAN spiffe://<trust domain>
// with no path, no extKeyUsage (X509 rules 4-7, 10, 11), a random serial
// number and key identifiers.
//
// ctx is checked before signing, as in [X509Authority.SignX509SVID].
func (a *X509Authority) SignX509CA(ctx context.Context, params X509CAParams) ([]*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	tmpl, pub, err := a.caTemplate(&params)
	if err != nil {
		return nil, fmt.Errorf("ca: cannot sign CA certificate: %w", err)
	}
	return a.sign(tmpl, pub)
}

func (a *X509Authority) caTemplate(p *X509CAParams) (*x509.Certificate, crypto.PublicKey, error) {
	td := p.TrustDomain
	switch {
	case td.IsZero() && a.id.IsZero():
		return nil, nil, errors.New("trust domain is missing")
	case td.IsZero():
		td = a.id.TrustDomain()
	case !a.id.IsZero() && td != a.id.TrustDomain():
		return nil, nil, fmt.Errorf("trust domain %q is not the authority's trust domain %q", td, a.id.TrustDomain())
	}
	if err := validateTrustDomain(td); err != nil {
		return nil, nil, err
	}
	if err := a.checkPathLen(p.MaxPathLen, p.MaxPathLenZero); err != nil {
		return nil, nil, err
	}
	ttl, err := validateTTL(p.TTL, DefaultX509CATTL)
	if err != nil {
		return nil, nil, err
	}
	pub, skid, err := publicKeyFrom(p.PublicKey, p.CSR)
	if err != nil {
		return nil, nil, err
	}
	notBefore, notAfter, err := validity(a.now(), ttl, a.notAfter)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := caTemplate(td, skid, p.Subject, p.MaxPathLen, p.MaxPathLenZero, notBefore, notAfter)
	if err != nil {
		return nil, nil, err
	}
	tmpl.AuthorityKeyId = a.parent.SubjectKeyId
	return tmpl, pub, nil
}

// checkPathLen refuses a pathLenConstraint the authority itself may not grant:
// with its own constraint n, a CA it signs must have a constraint below n, and
// with n = 0 it may sign no CA at all.
func (a *X509Authority) checkPathLen(maxPathLen int, zero bool) error {
	if maxPathLen < 0 || (maxPathLen == 0 && !zero) {
		maxPathLen = -1 // unconstrained
	}
	limit := a.cert.MaxPathLen
	if limit < 0 || (limit == 0 && !a.cert.MaxPathLenZero) {
		return nil
	}
	if limit == 0 {
		return errors.New("the authority's pathLenConstraint of 0 forbids signing CA certificates")
	}
	if maxPathLen < 0 || maxPathLen >= limit {
		return fmt.Errorf("pathLenConstraint must be below the authority's %d", limit)
	}
	return nil
}

// caTemplate builds the template of a signing certificate for td.
func caTemplate(td spiffeid.TrustDomain, skid []byte, subject pkix.Name, maxPathLen int, zero bool, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	if isEmptyName(subject) {
		subject = pkix.Name{Organization: []string{"SPIFFE"}, SerialNumber: serial.String()}
	}
	if maxPathLen < 0 || (maxPathLen == 0 && !zero) {
		maxPathLen, zero = -1, false
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		SubjectKeyId: skid,
		// X509 rule 11: the CA's SPIFFE ID is the trust domain ID, no path.
		URIs: []*url.URL{td.ID().URL()},
		// X509 rules 4, 5, 7: cA=TRUE, optional pathLen, exactly
		// keyCertSign|cRLSign. Rule 10: no extKeyUsage.
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        zero,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil
}

func isEmptyName(n pkix.Name) bool {
	return len(n.ToRDNSequence()) == 0
}

// sign creates the certificate and returns it followed by the authority chain.
func (a *X509Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.parent, pub, a.signer)
	if err != nil {
		return nil, fmt.Errorf("ca: cannot create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: cannot parse the certificate just created: %w", err)
	}
	out := make([]*x509.Certificate, 0, 1+len(a.chain))
	out = append(out, cert)
	return append(out, a.chain...), nil
}
