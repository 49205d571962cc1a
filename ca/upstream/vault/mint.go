package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// maxCerts bounds the certificates of one field of an answer.
const maxCerts = 8

// maxSkew is how far Vault's clock may run ahead of ours: a certificate
// whose validity starts less than this after now is checked at its
// start. Vault backdates by 30 seconds only.
const maxSkew = 5 * time.Minute

// MintX509CA has Vault sign the CA certificate of req.CSR with the PKI
// engine's sign-intermediate, and reads the mount's CA chain for the
// roots. It logs in first when needed, and once more when Vault refuses
// the token (403) and the method can get another. The answer is checked
// (see the package documentation) before it is returned: Chain is the new
// CA then the intermediates up to a root, Roots the roots of the mount's
// chain.
func (c *Client) MintX509CA(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
	if req.TrustDomain.IsZero() {
		return ca.X509CAResponse{}, errors.New("vault: the trust domain is missing")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("vault: bad CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("vault: bad CSR signature: %w", err)
	}
	if req.TTL < 0 {
		return ca.X509CAResponse{}, fmt.Errorf("vault: negative TTL %v", req.TTL)
	}
	body := map[string]any{
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: req.CSR})),
		// Vault asks for a common name; kept out of the SANs, the CA's
		// only SAN is its SPIFFE ID (X509 rule 11).
		"common_name":          req.TrustDomain.Name(),
		"exclude_cn_from_sans": true,
		"organization":         "SPIFFE",
		"uri_sans":             req.TrustDomain.IDString(),
		"format":               "pem_bundle",
		"use_csr_values":       false,
	}
	if req.TTL > 0 {
		body["ttl"] = strconv.FormatInt(int64((req.TTL+time.Second-1)/time.Second), 10)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	signed, err := c.signLocked(ctx, body)
	if err != nil {
		return ca.X509CAResponse{}, err
	}
	chain, err := c.api.Logical().ReadWithContext(ctx, c.mount+"/cert/ca_chain")
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("vault: reading %s/cert/ca_chain: %w", c.mount, describe(err))
	}
	if chain == nil {
		return ca.X509CAResponse{}, fmt.Errorf("vault: %s/cert/ca_chain answered nothing: is the PKI engine mounted at %s?", c.mount, c.mount)
	}
	resp, err := checkAnswer(signed.Data["certificate"], chain.Data["certificate"], csr.PublicKey, req.TrustDomain, c.now())
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("vault: %w", err)
	}
	c.log.Info("Vault signed an X.509 CA", "serial", resp.Chain[0].SerialNumber.String(), "not_after", resp.Chain[0].NotAfter,
		"roots", len(resp.Roots))
	return resp, nil
}

// signLocked posts the sign-intermediate request, logging in first as
// needed, and again once on a refused token. c.mu is held.
func (c *Client) signLocked(ctx context.Context, body map[string]any) (*api.Secret, error) {
	path := c.mount + "/root/sign-intermediate"
	for attempt := 0; ; attempt++ {
		if err := c.ensureLocked(ctx); err != nil {
			return nil, err
		}
		s, err := c.api.Logical().WriteWithContext(ctx, path, body)
		if err != nil && isDenied(err) && attempt == 0 && c.relogs() {
			// The token was revoked or expired early: another login.
			c.log.Warn("Vault refused the token, logging in again", "path", path)
			c.tok = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("vault: %s: %w", path, describe(err))
		}
		if s == nil || len(s.Data) == 0 {
			return nil, fmt.Errorf("vault: %s answered no data", path)
		}
		return s, nil
	}
}

// parseCertificates reads a PEM field of an answer: a string of one to
// maxCerts CERTIFICATE blocks, separated by white space only.
func parseCertificates(field any, what string) ([]*x509.Certificate, error) {
	s, ok := field.(string)
	if !ok {
		return nil, fmt.Errorf("%s is missing or not a string", what)
	}
	rest := []byte(s)
	var certs []*x509.Certificate
	for {
		rest = bytes.TrimSpace(rest)
		if len(rest) == 0 {
			break
		}
		var block *pem.Block
		block, rest = pem.Decode(rest)
		switch {
		case block == nil:
			return nil, fmt.Errorf("%s holds something other than PEM", what)
		case block.Type != "CERTIFICATE":
			return nil, fmt.Errorf("%s holds a %q PEM block", what, block.Type)
		case len(certs) == maxCerts:
			return nil, fmt.Errorf("%s holds more than %d certificates", what, maxCerts)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", what)
	}
	return certs, nil
}

// checkAnswer checks what Vault signed (certField, sign-intermediate's
// pem_bundle: the new CA, then its issuer's chain unless the issuer is a
// root) against the request and the mount's CA chain (chainField,
// cert/ca_chain's certificate), and builds the response.
func checkAnswer(certField, chainField any, pub crypto.PublicKey, td spiffeid.TrustDomain, now time.Time) (ca.X509CAResponse, error) {
	signed, err := parseCertificates(certField, "the signed certificate")
	if err != nil {
		return ca.X509CAResponse{}, err
	}
	mountChain, err := parseCertificates(chainField, "the mount's CA chain")
	if err != nil {
		return ca.X509CAResponse{}, err
	}
	leaf := signed[0]
	switch {
	case !publickey.Equal(leaf.PublicKey, pub):
		return ca.X509CAResponse{}, errors.New("the signed certificate does not hold the CSR's key")
	case !leaf.BasicConstraintsValid || !leaf.IsCA:
		return ca.X509CAResponse{}, errors.New("the signed certificate is not a CA")
	case leaf.KeyUsage&x509.KeyUsageCertSign == 0:
		return ca.X509CAResponse{}, errors.New("the signed certificate may not sign certificates")
	case len(leaf.URIs) != 1 || leaf.URIs[0].String() != td.IDString():
		return ca.X509CAResponse{}, fmt.Errorf("the signed certificate's URI SANs %v are not exactly %s", leaf.URIs, td.IDString())
	}
	// The roots are the self-signed certificates of the mount's chain; a
	// chain that ends below a root Vault does not know is anchored at its
	// last certificate, as an upstream CA file is.
	var roots []*x509.Certificate
	for _, c := range mountChain {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			roots = append(roots, c)
		}
	}
	if len(roots) == 0 {
		roots = mountChain[len(mountChain)-1:]
	}
	at := now
	if at.Before(leaf.NotBefore) && leaf.NotBefore.Sub(at) <= maxSkew {
		at = leaf.NotBefore
	}
	opts := x509.VerifyOptions{
		Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, c := range append(signed[1:], mountChain...) {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("the signed certificate does not chain to the mount's CA chain: %w", err)
	}
	// Verify returns the chain leaf first, anchor last; the anchor travels
	// in the bundle, not in the chain (X509 rule 15).
	chain := chains[0][:len(chains[0])-1]
	return ca.X509CAResponse{Chain: append([]*x509.Certificate(nil), chain...), Roots: roots}, nil
}
