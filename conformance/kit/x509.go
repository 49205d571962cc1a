package kit

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Extension OIDs the X509 rules look at.
var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidEKU      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// emptySubject is the DER of an empty Name (an empty SEQUENCE).
var emptySubject = []byte{0x30, 0x00}

// X509SVID is an X509-SVID to check.
type X509SVID struct {
	// Chain is the leaf, then any intermediates, in the order served.
	Chain []*x509.Certificate
	// Key is the private key as served: PKCS#8 DER, unencrypted. Nil
	// skips the key's part of X509 rule 15.
	Key []byte
	// Bundles are the X.509 authorities by trust domain name
	// ("example.org"). Nil skips X509 rule 21.
	Bundles map[string][]*x509.Certificate
	// Name prefixes the subjects of the results ("svids[0]").
	Name string
}

// ParseX509SVIDPEM reads an X509-SVID from PEM: CERTIFICATE blocks (leaf
// first) and, optionally, one PRIVATE KEY block (PKCS#8). Other blocks are
// an error, as is a file without certificates.
func ParseX509SVIDPEM(data []byte) (chain []*x509.Certificate, key []byte, err error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("kit: certificate %d: %w", len(chain), err)
			}
			chain = append(chain, cert)
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if key != nil {
				return nil, nil, errors.New("kit: more than one private key")
			}
			// Kept as given: X509 rule 15 reports a key that is not PKCS#8.
			key = block.Bytes
		default:
			return nil, nil, fmt.Errorf("kit: unexpected PEM block %q", block.Type)
		}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, nil, errors.New("kit: trailing data that is not PEM")
	}
	if len(chain) == 0 {
		return nil, nil, errors.New("kit: no CERTIFICATE block")
	}
	return chain, key, nil
}

// ParseCertificatesPEM reads PEM CERTIFICATE blocks, such as an X.509
// bundle of one trust domain.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	chain, key, err := ParseX509SVIDPEM(data)
	if err != nil {
		return nil, err
	}
	if key != nil {
		return nil, errors.New("kit: a private key among the certificates")
	}
	return chain, nil
}

// CheckX509SVID checks an X509-SVID against the X509 rules at time now,
// and adds the results to r. It returns the leaf's SPIFFE ID, or the zero
// ID when the leaf has none.
func (r *Report) CheckX509SVID(svid X509SVID, now time.Time) spiffeid.ID {
	name := svid.Name
	if name != "" {
		name += " "
	}
	if len(svid.Chain) == 0 {
		r.add("X509 rule 15", name+"chain", false, "no certificate")
		return spiffeid.ID{}
	}
	leaf := svid.Chain[0]
	id := r.checkLeafID(name+"leaf", leaf)
	leafName := name + "leaf"
	if !id.IsZero() {
		leafName += " " + id.String()
	}
	r.checkSubject(leafName, leaf)
	r.add("X509 rule 4", leafName, !(leaf.BasicConstraintsValid && leaf.IsCA), "leaf cA=%v (basicConstraints present: %v)", leaf.IsCA, leaf.BasicConstraintsValid)
	r.checkKeyUsageExt(leafName, leaf)
	ku := leaf.KeyUsage
	r.add("X509 rule 8", leafName, ku&x509.KeyUsageDigitalSignature != 0 && ku&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) == 0,
		"keyUsage %s", keyUsageString(ku))
	if hasExt(leaf, oidEKU) {
		r.add("X509 rule 9a", leafName, true, "extKeyUsage present")
		var server, client bool
		for _, u := range leaf.ExtKeyUsage {
			server = server || u == x509.ExtKeyUsageServerAuth
			client = client || u == x509.ExtKeyUsageClientAuth
		}
		r.add("X509 rule 9b", leafName, server && client, "serverAuth %v, clientAuth %v", server, client)
	} else {
		r.add("X509 rule 9a", leafName, false, "no extKeyUsage extension")
		r.na("X509 rule 9b", leafName, "no extKeyUsage extension")
	}
	for i, cert := range svid.Chain[1:] {
		r.checkSigningCert(fmt.Sprintf("%sintermediate %d", name, i+1), cert, false)
	}
	r.checkChainOrder(name+"chain", svid.Chain)
	r.checkKey(name+"private key", leaf, svid.Key)
	r.checkPath(leafName, svid, id, now)
	return id
}

// checkLeafID checks X509 rules 1 and 2 and returns the leaf's ID.
func (r *Report) checkLeafID(subject string, leaf *x509.Certificate) spiffeid.ID {
	if len(leaf.URIs) != 1 {
		r.add("X509 rule 1", subject, false, "%d URI SANs %v", len(leaf.URIs), leaf.URIs)
		r.na("X509 rule 2", subject, "no single URI SAN")
		return spiffeid.ID{}
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		r.add("X509 rule 1", subject, false, "URI SAN %q is not a SPIFFE ID: %v", leaf.URIs[0], err)
		r.na("X509 rule 2", subject, "no SPIFFE ID")
		return spiffeid.ID{}
	}
	r.add("X509 rule 1", subject, true, "one URI SAN, %s", id)
	r.add("X509 rule 2", subject, id.Path() != "", "path %q", id.Path())
	return id
}

// checkSubject checks X509 rule 3.
func (r *Report) checkSubject(subject string, cert *x509.Certificate) {
	if !bytes.Equal(cert.RawSubject, emptySubject) {
		r.na("X509 rule 3", subject, "subject %q is not empty", cert.Subject.String())
		return
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSAN) {
			r.add("X509 rule 3", subject, ext.Critical, "empty subject, SAN critical %v", ext.Critical)
			return
		}
	}
	r.add("X509 rule 3", subject, false, "empty subject and no SAN extension")
}

// checkKeyUsageExt checks X509 rule 6.
func (r *Report) checkKeyUsageExt(subject string, cert *x509.Certificate) {
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidKeyUsage) {
			r.add("X509 rule 6", subject, ext.Critical, "keyUsage present, critical %v", ext.Critical)
			return
		}
	}
	r.add("X509 rule 6", subject, false, "no keyUsage extension")
}

// checkSigningCert checks the rules of a signing certificate: X509 rules
// 4, 6, 7, 11a, 11b, and 14 for a root of a bundle.
func (r *Report) checkSigningCert(subject string, cert *x509.Certificate, root bool) {
	r.checkSubject(subject, cert)
	r.add("X509 rule 4", subject, cert.BasicConstraintsValid && cert.IsCA, "cA=%v (basicConstraints present: %v)", cert.IsCA, cert.BasicConstraintsValid)
	r.checkKeyUsageExt(subject, cert)
	r.add("X509 rule 7", subject, cert.KeyUsage&x509.KeyUsageCertSign != 0, "keyUsage %s", keyUsageString(cert.KeyUsage))
	switch {
	case len(cert.URIs) == 0:
		r.add("X509 rule 11a", subject, false, "no URI SAN")
		r.na("X509 rule 11b", subject, "no SPIFFE ID")
	default:
		r.add("X509 rule 11a", subject, true, "URI SANs %v", cert.URIs)
		for _, u := range cert.URIs {
			if id, err := spiffeid.FromURI(u); err == nil {
				r.add("X509 rule 11b", subject, id.Path() == "", "SPIFFE ID %s", id)
			} else {
				r.na("X509 rule 11b", subject, "URI SAN %q is not a SPIFFE ID", u)
			}
		}
	}
	if root {
		selfSigned := bytes.Equal(cert.RawIssuer, cert.RawSubject) && cert.CheckSignatureFrom(cert) == nil
		r.add("X509 rule 14", subject, selfSigned, "self-signed %v (subject %q, issuer %q)", selfSigned, cert.Subject.String(), cert.Issuer.String())
	}
}

// CheckX509Authorities checks the CA certificates of one trust domain's
// X.509 bundle as signing certificates (X509 rules 4, 6, 7, 11a, 11b and
// 14), and adds the results to r.
func (r *Report) CheckX509Authorities(name string, roots []*x509.Certificate) {
	for i, cert := range roots {
		r.checkSigningCert(fmt.Sprintf("%s authority %d (%s)", name, i, cert.Subject.String()), cert, true)
	}
}

// checkChainOrder checks the order part of X509 rule 15.
func (r *Report) checkChainOrder(subject string, chain []*x509.Certificate) {
	for i := 0; i+1 < len(chain); i++ {
		// The signature alone: whether the signer may sign is for the
		// signing certificate's own rules (X509 rules 4 and 7).
		if err := chain[i+1].CheckSignature(chain[i].SignatureAlgorithm, chain[i].RawTBSCertificate, chain[i].Signature); err != nil {
			r.add("X509 rule 15", subject, false, "certificate %d is not signed by certificate %d: %v", i, i+1, err)
			return
		}
	}
	r.add("X509 rule 15", subject, true, "%d certificates, each signed by the next", len(chain))
}

// checkKey checks the key part of X509 rule 15.
func (r *Report) checkKey(subject string, leaf *x509.Certificate, der []byte) {
	if der == nil {
		r.na("X509 rule 15", subject, "no private key given")
		return
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		r.add("X509 rule 15", subject, false, "not an unencrypted PKCS#8 key: %v", err)
		return
	}
	pub, ok := key.(crypto.Signer)
	if !ok {
		r.add("X509 rule 15", subject, false, "%T is not a signing key", key)
		return
	}
	eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool })
	match := ok && eq.Equal(leaf.PublicKey)
	r.add("X509 rule 15", subject, match, "PKCS#8 %T, matches the leaf's public key: %v", key, match)
}

// checkPath checks X509 rule 21.
func (r *Report) checkPath(subject string, svid X509SVID, id spiffeid.ID, now time.Time) {
	switch {
	case svid.Bundles == nil:
		r.na("X509 rule 21", subject, "no bundle given")
		return
	case id.IsZero():
		r.na("X509 rule 21", subject, "the leaf has no SPIFFE ID to choose a bundle by")
		return
	}
	roots, ok := svid.Bundles[id.TrustDomain().Name()]
	if !ok || len(roots) == 0 {
		r.add("X509 rule 21", subject, false, "no X.509 bundle for trust domain %q", id.TrustDomain().Name())
		return
	}
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range roots {
		opts.Roots.AddCert(c)
	}
	for _, c := range svid.Chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := svid.Chain[0].Verify(opts)
	if err != nil {
		r.add("X509 rule 21", subject, false, "does not validate to the %d authorities of %q at %s: %v", len(roots), id.TrustDomain().Name(), now.Format(time.RFC3339), err)
		return
	}
	r.add("X509 rule 21", subject, true, "validates to %q (chain of %d), valid until %s", id.TrustDomain().Name(), len(chains[0]), svid.Chain[0].NotAfter.Format(time.RFC3339))
}

func hasExt(cert *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// keyUsageString names the bits of a keyUsage.
func keyUsageString(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var b []byte
	for i, n := range names {
		if ku&(1<<i) != 0 {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, n...)
		}
	}
	if len(b) == 0 {
		return "(none)"
	}
	return string(b)
}
