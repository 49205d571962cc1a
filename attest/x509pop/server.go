package x509pop

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the x509pop node attestor.
const Type = "x509pop"

// maxSelectors bounds the selectors of one node, as registry.MaxSelectors
// bounds those of an entry.
const maxSelectors = 64

// maxPEMFile bounds the certificate and key files the Load functions read.
const maxPEMFile = 1 << 20

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// Roots are the CA certificates that node certificates must chain to.
	// Required.
	Roots []*x509.Certificate

	// Now gives the current time, at which certificates must be valid. Nil
	// means time.Now.
	Now func() time.Time
}

// Server is the server side of x509pop attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type Server struct {
	roots *x509.CertPool
	now   func() time.Time
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits nodes whose certificates chain to
// c.Roots. It fails if there is no root or a root is nil. The roots are
// copied into a pool; changing c afterwards has no effect.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.Roots) == 0 {
		return nil, errors.New("x509pop: no root certificates")
	}
	pool := x509.NewCertPool()
	for i, r := range c.Roots {
		if r == nil {
			return nil, fmt.Errorf("x509pop: root certificate %d is nil", i)
		}
		pool.AddCert(r)
	}
	s := &Server{roots: pool, now: c.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// LoadServer returns a server trusting the CERTIFICATE blocks of the PEM
// file at caBundlePath (at most 1 MiB), at the current time.
func LoadServer(caBundlePath string) (*Server, error) {
	b, err := atomicfile.Read(caBundlePath, maxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("x509pop: reading CA bundle: %w", err)
	}
	roots, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("x509pop: CA bundle %s: %w", caBundlePath, err)
	}
	return NewServer(ServerConfig{Roots: roots})
}

// Type returns "x509pop".
func (s *Server) Type() string { return Type }

// Attest verifies the certificate chain in payload, sends one challenge (a
// nonce of [NonceSize] random bytes and the ID of td's servers), and admits
// the node if the answer is a proof of possession of the leaf's key made
// for td and its servers (see the package documentation).
//
// The agent ID is spiffe://<td>/spiffekit/agent/x509pop/<SHA-256 of the
// leaf's DER, in lower-case hexadecimal>, and the agent can re-attest. The
// selectors, all of type "x509pop", are:
//
//	subject:cn:<common name>           if the leaf's subject has one
//	serialnumber:<hex>                 the leaf's serial, lower-case hexadecimal
//	ca:fingerprint:<hex>               SHA-256 of each CA certificate (intermediates
//	                                   and root) of every verified chain
//	san:dns:<name>                     each DNS name of the leaf
//	san:uri:<uri>                      each URI of the leaf
//
// A value a selector cannot hold (a NUL byte, longer than
// [attest.MaxValueLength]) is left out; leaving a selector out only ever
// makes fewer registration entries match.
//
// Errors wrapping [attest.ErrNodeRejected]: the payload is malformed or
// larger than [attest.MaxNodePayload]; the chain does not verify; the leaf
// is a CA, lacks the clientAuth extended key usage or the digitalSignature
// key usage, or has a key of an unsupported type; it would give more than 64
// selectors; the response is not a valid signature. An error from challenge
// is returned wrapped, without ErrNodeRejected.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("x509pop: no trust domain")
	}
	if challenge == nil {
		return attest.NodeResult{}, errors.New("x509pop: no challenger")
	}
	chain, err := parsePayload(payload)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	leaf := chain[0]
	if err := checkLeaf(leaf); err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: inter,
		CurrentTime:   s.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return attest.NodeResult{}, reject(err, "certificate of serial %s does not verify: %v", serial(leaf), err)
	}
	leafHash := sha256.Sum256(leaf.Raw)
	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", "x509pop", hex.EncodeToString(leafHash[:]))
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("x509pop: agent ID: %w", err)
	}
	sels := selectors(leaf, chains)
	if sels.Len() > maxSelectors {
		return attest.NodeResult{}, reject(nil, "certificate of serial %s gives %d selectors, more than %d", serial(leaf), sels.Len(), maxSelectors)
	}

	// Proof of possession: a fresh nonce, so that a signature seen once
	// (or taken from another exchange) proves nothing now, and the server
	// it is for, so that a proof made for a server of another trust domain
	// (relaying our challenge to a node of its own) proves nothing here.
	audience, err := audienceOf(td)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("x509pop: %w", err)
	}
	nonce := make([]byte, NonceSize)
	rand.Read(nonce) // crypto/rand.Read never fails
	sig, err := challenge(ctx, marshalChallenge(nonce, audience))
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("x509pop: challenge: %w", err)
	}
	if len(sig) > maxSignatureSize {
		return attest.NodeResult{}, reject(nil, "response is larger than %d bytes", maxSignatureSize)
	}
	if err := verify(leaf.PublicKey, proofDigest(nonce, leafHash, td, audience), sig); err != nil {
		return attest.NodeResult{}, reject(err, "no proof of possession for the certificate of serial %s: %v", serial(leaf), err)
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   sels,
		CanReattest: true,
	}, nil
}

// checkLeaf applies the rules x509.Verify does not: it accepts a leaf
// without extended key usage for any purpose, and ignores key usage.
func checkLeaf(leaf *x509.Certificate) error {
	if leaf.IsCA {
		return fmt.Errorf("leaf certificate of serial %s is a CA", serial(leaf))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return fmt.Errorf("leaf certificate of serial %s lacks the clientAuth extended key usage", serial(leaf))
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("leaf certificate of serial %s lacks the digitalSignature key usage", serial(leaf))
	}
	if err := checkKeyType(leaf.PublicKey); err != nil {
		return fmt.Errorf("leaf certificate of serial %s: %w", serial(leaf), err)
	}
	return nil
}

// selectors returns the node's selectors.
func selectors(leaf *x509.Certificate, chains [][]*x509.Certificate) attest.Selectors {
	var sels []attest.Selector
	add := func(value string) {
		sel := attest.Selector{Type: Type, Value: value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		add("subject:cn:" + cn)
	}
	add("serialnumber:" + serial(leaf))
	for _, chain := range chains {
		for _, ca := range chain[1:] {
			fp := sha256.Sum256(ca.Raw)
			add("ca:fingerprint:" + hex.EncodeToString(fp[:]))
		}
	}
	for _, name := range leaf.DNSNames {
		add("san:dns:" + name)
	}
	for _, uri := range leaf.URIs {
		add("san:uri:" + uri.String())
	}
	return attest.NewSelectors(sels...)
}

// serial returns the certificate's serial number in lower-case hexadecimal.
func serial(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return "none"
	}
	return c.SerialNumber.Text(16)
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "x509pop: "+format, args...)
}
