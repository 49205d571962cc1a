package nested

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// DefaultTimeout bounds one MintX509CA call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxRoots bounds the roots an answer may hold.
const maxRoots = 64

// Config configures [New]. The struct is copied.
type Config struct {
	// ServerAddress is the host:port of the upstream server's node API
	// (SPIRE's server_address and server_port). Required.
	ServerAddress string

	// TrustDomain is the trust domain of both servers. Required.
	TrustDomain spiffeid.TrustDomain

	// SVIDSource gives the X509-SVID this server presents: one for the
	// SPIFFE ID of a downstream entry of the upstream server, normally
	// from the Workload API of an agent attested to that server
	// (workloadapi.X509Source). Required.
	SVIDSource x509svid.Source

	// BundleSource gives the trust domain's bundle, which verifies the
	// upstream server's certificate (workloadapi.X509Source is one too).
	// Required.
	BundleSource x509bundle.Source

	// Timeout bounds one MintX509CA call, dial included. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// Logger receives a line for each CA signed. Nil discards.
	Logger *slog.Logger

	// Now returns the current time, with which answers are verified. Nil
	// means time.Now.
	Now func() time.Time
}

// Authority is a [ca.UpstreamAuthority] backed by another issuing server
// of the same trust domain: it has that server sign each CA as an
// intermediate through the node API. It is safe for concurrent use.
type Authority struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	serverID spiffeid.ID

	mu     sync.Mutex
	closed bool
}

var _ ca.UpstreamJWTPublisher = (*Authority)(nil)

// New checks cfg. It starts nothing and dials nothing: each call makes
// its own connection.
func New(cfg Config) (*Authority, error) {
	switch {
	case cfg.ServerAddress == "":
		return nil, errors.New("nested: Config.ServerAddress is required")
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("nested: Config.TrustDomain is required")
	case cfg.SVIDSource == nil:
		return nil, errors.New("nested: Config.SVIDSource is required")
	case cfg.BundleSource == nil:
		return nil, errors.New("nested: Config.BundleSource is required")
	case cfg.Timeout < 0:
		return nil, errors.New("nested: Config.Timeout must not be negative")
	}
	if _, _, err := net.SplitHostPort(cfg.ServerAddress); err != nil {
		return nil, fmt.Errorf("nested: server address %q is not host:port: %w", cfg.ServerAddress, err)
	}
	serverID, err := spiffeid.FromPath(cfg.TrustDomain, nodeapi.ServerPath)
	if err != nil {
		return nil, fmt.Errorf("nested: %w", err)
	}
	a := &Authority{cfg: cfg, log: cfg.Logger, now: cfg.Now, serverID: serverID}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.cfg.Timeout == 0 {
		a.cfg.Timeout = DefaultTimeout
	}
	return a, nil
}

// client returns a node API client on a new connection, and the function
// that closes it. Each call has its own connection, so that each presents
// the X509-SVID SVIDSource holds then: the upstream server checks the
// certificate of the connection, which a long-lived one would keep past
// its expiry. Calls are rare (one per CA, one per publication of JWT
// keys). The TLS configuration accepts only the upstream server's own
// SPIFFE ID.
func (a *Authority) client() (nodepb.NodeClient, func(), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, nil, errors.New("nested: the authority is closed")
	}
	tc := tlsconfig.MTLSClientConfig(a.cfg.SVIDSource, a.cfg.BundleSource, tlsconfig.AuthorizeID(a.serverID))
	tc.MinVersion = tls.VersionTLS13 // as the node API
	conn, err := grpc.NewClient("passthrough:///"+a.cfg.ServerAddress, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, nil, fmt.Errorf("nested: %w", err)
	}
	return nodepb.NewNodeClient(conn), func() { conn.Close() }, nil
}

// Close makes MintX509CA and PublishJWTKeys fail from now on. It is
// idempotent; a call under way finishes.
func (a *Authority) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	return nil
}

// MintX509CA has the upstream server sign req.CSR as an intermediate CA.
// The answer is checked before it is used: a chain of at most
// nodeapi.MaxChainLength certificates whose first is a CA for the key of
// the CSR with the trust domain's SPIFFE ID, valid now, that verifies to
// the roots the server sent; Roots are those roots. The upstream server
// caps the lifetime at its own CA's expiry.
func (a *Authority) MintX509CA(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
	if req.TrustDomain != a.cfg.TrustDomain {
		return ca.X509CAResponse{}, fmt.Errorf("nested: trust domain %q is not the upstream server's %q", req.TrustDomain, a.cfg.TrustDomain)
	}
	if req.TTL < 0 {
		return ca.X509CAResponse{}, errors.New("nested: the TTL must not be negative")
	}
	c, done, err := a.client()
	if err != nil {
		return ca.X509CAResponse{}, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	ttl := int64(math.Ceil(req.TTL.Seconds()))
	resp, err := c.MintX509CA(ctx, &nodepb.MintX509CARequest{Csr: req.CSR, TtlSeconds: ttl})
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("nested: the upstream server %s did not sign the CA: %w", a.cfg.ServerAddress, err)
	}
	out, err := a.check(req, resp)
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("nested: the answer of the upstream server %s: %w", a.cfg.ServerAddress, err)
	}
	a.log.Info("the upstream server signed a CA", "server", a.cfg.ServerAddress, "expires", out.Chain[0].NotAfter)
	return out, nil
}

// check verifies the upstream server's answer to req.
func (a *Authority) check(req ca.X509CARequest, resp *nodepb.MintX509CAResponse) (ca.X509CAResponse, error) {
	switch {
	case len(resp.CertChain) == 0:
		return ca.X509CAResponse{}, errors.New("no certificate")
	case len(resp.CertChain) > nodeapi.MaxChainLength:
		return ca.X509CAResponse{}, fmt.Errorf("%d certificates exceed %d", len(resp.CertChain), nodeapi.MaxChainLength)
	case len(resp.Roots) == 0:
		return ca.X509CAResponse{}, errors.New("no root")
	case len(resp.Roots) > maxRoots:
		return ca.X509CAResponse{}, fmt.Errorf("%d roots exceed %d", len(resp.Roots), maxRoots)
	}
	chain, err := parseAll(resp.CertChain)
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("chain: %w", err)
	}
	roots, err := parseAll(resp.Roots)
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("roots: %w", err)
	}
	leaf := chain[0]
	if !leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return ca.X509CAResponse{}, errors.New("the certificate is not a CA that may sign certificates")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != a.cfg.TrustDomain.IDString() {
		return ca.X509CAResponse{}, fmt.Errorf("the CA does not name exactly %s", a.cfg.TrustDomain.IDString())
	}
	if err := sameKey(req, leaf); err != nil {
		return ca.X509CAResponse{}, err
	}
	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range chain[1:] {
		interPool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: interPool, CurrentTime: a.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("the CA does not verify to the roots: %w", err)
	}
	return ca.X509CAResponse{Chain: chain, Roots: roots}, nil
}

// sameKey checks that cert certifies the key of req.
func sameKey(req ca.X509CARequest, cert *x509.Certificate) error {
	pub := req.PublicKey
	if pub == nil {
		csr, err := x509.ParseCertificateRequest(req.CSR)
		if err != nil {
			return fmt.Errorf("the request's CSR: %w", err)
		}
		pub = csr.PublicKey
	}
	want, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("the request's key: %w", err)
	}
	got, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil || !bytes.Equal(got, want) {
		return errors.New("the CA is not for the key of the CSR")
	}
	return nil
}

func parseAll(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// PublishJWTKeys has the upstream server take keys, by key ID, into the
// trust domain's bundle in place of what this server published before,
// and returns the upstream server's bundle, whose trust domain must be
// Config.TrustDomain.
func (a *Authority) PublishJWTKeys(ctx context.Context, keys map[string]crypto.PublicKey) (*spiffebundle.Bundle, error) {
	req := &nodepb.PublishJWTKeysRequest{}
	for kid, key := range keys {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			return nil, fmt.Errorf("nested: JWT key %q: %w", kid, err)
		}
		req.Keys = append(req.Keys, &nodepb.JWTKey{KeyId: kid, PublicKey: der})
	}
	slices.SortFunc(req.Keys, func(x, y *nodepb.JWTKey) int { return strings.Compare(x.KeyId, y.KeyId) })
	c, done, err := a.client()
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	resp, err := c.PublishJWTKeys(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("nested: the upstream server %s did not take the JWT keys: %w", a.cfg.ServerAddress, err)
	}
	b, err := spiffebundle.Parse(a.cfg.TrustDomain, resp.Bundle)
	if err != nil {
		return nil, fmt.Errorf("nested: the bundle of the upstream server %s: %w", a.cfg.ServerAddress, err)
	}
	return b, nil
}
