package nodeapi

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// ClientConfig says how an agent reaches its servers and recognises them.
type ClientConfig struct {
	// Servers are the addresses ("host:port") of the issuing servers of
	// the trust domain, at least one. The client uses the first that
	// answers and moves on to the next when it fails.
	Servers []string

	// TrustDomain is the agent's trust domain. Required.
	TrustDomain spiffeid.TrustDomain

	// Bundle supplies the X.509 authorities that verify the servers'
	// certificates. Required, unless InsecureBootstrap is set for Attest.
	// An agent passes a source that follows the bundle it receives.
	Bundle x509bundle.Source

	// InsecureBootstrap lets Attest proceed without verifying the server,
	// and trust the bundle the server returns. It exists to try things out:
	// anyone who can intercept the connection can then impersonate the
	// server. Ignored by Dial.
	InsecureBootstrap bool

	// Logger receives connection events. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time, at which the servers' certificates are
	// verified. Nil means time.Now.
	Now func() time.Time
}

func (c ClientConfig) check(needBundle bool) error {
	switch {
	case len(c.Servers) == 0:
		return errors.New("nodeapi: ClientConfig.Servers needs at least one address")
	case c.TrustDomain.IsZero():
		return errors.New("nodeapi: ClientConfig.TrustDomain is required")
	case needBundle && c.Bundle == nil:
		return errors.New("nodeapi: ClientConfig.Bundle is required (or InsecureBootstrap, to try things out)")
	}
	return nil
}

// ErrServerNotVerified is wrapped by the error of an attestation that
// failed because the server could not be verified with
// ClientConfig.Bundle, and no server could: the bundle holds no CA of the
// server's (the wrong CA, or a certificate that is not a CA), or the server
// is of another trust domain, or presents another ID than the server's.
// Trying again with the same bundle does not help.
var ErrServerNotVerified = errors.New("the server could not be verified with the trust bundle")

// notVerified is the error of a server that failed verification.
type notVerified struct{ err error }

func (e notVerified) Error() string        { return e.err.Error() }
func (e notVerified) Unwrap() error        { return e.err }
func (e notVerified) Is(target error) bool { return target == ErrServerNotVerified }

// verifyRecorder remembers how the verifications of the handshakes of one
// call went, which gRPC reports only as text.
type verifyRecorder struct {
	mu       sync.Mutex
	failed   error // the last verification that failed
	verified bool  // a server was verified
}

func (r *verifyRecorder) wrap(verify func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		err := verify(cs)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.failed = err
		} else {
			r.verified = true
		}
		return err
	}
}

// explain returns the error of a call: when it failed as Unavailable after
// a server failed verification and none passed, that failure, which
// wraps ErrServerNotVerified; else err.
func (r *verifyRecorder) explain(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil || r.verified || status.Code(err) != codes.Unavailable {
		return err
	}
	return notVerified{r.failed}
}

// ErrNodeAttestor wraps the failures of the agent's own node attestor (it
// cannot produce its evidence, or answer a challenge): trying again does not
// help.
var ErrNodeAttestor = errors.New("node attestor failed")

// AgentSVID is what an agent receives from attestation or renewal.
type AgentSVID struct {
	// ID is the agent's SPIFFE ID.
	ID spiffeid.ID
	// Certificates is the agent's X509-SVID, leaf first.
	Certificates []*x509.Certificate
	// Bundle is the trust domain's bundle.
	Bundle *spiffebundle.Bundle
}

// NewCSR returns a DER PKCS#10 request for key, naming id as its URI SAN
// when id is not zero.
func NewCSR(key crypto.Signer, id spiffeid.ID) ([]byte, error) {
	tmpl := &x509.CertificateRequest{}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("nodeapi: creating a CSR: %w", err)
	}
	return der, nil
}

// dial connects to the servers with the given client TLS configuration.
func dial(cfg ClientConfig, tc *tls.Config) (*grpc.ClientConn, error) {
	r := manual.NewBuilderWithScheme("spiffekit-node")
	addrs := make([]resolver.Address, len(cfg.Servers))
	for i, a := range cfg.Servers {
		addrs[i] = resolver.Address{Addr: a}
	}
	r.InitialState(resolver.State{Addresses: addrs})
	cc, err := grpc.NewClient(r.Scheme()+":///servers",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("nodeapi: %w", err)
	}
	return cc, nil
}

// serverVerifier checks that the peer is an issuing server of the
// configuration's trust domain, at the configuration's time.
func serverVerifier(cfg ClientConfig) func(tls.ConnectionState) error {
	want := spiffeid.RequireFromPath(cfg.TrustDomain, ServerPath)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return func(cs tls.ConnectionState) error {
		id, _, err := x509svid.Verify(cs.PeerCertificates, cfg.Bundle, x509svid.WithTime(now()))
		if err != nil {
			return fmt.Errorf("nodeapi: verifying the server: %w", err)
		}
		if id != want {
			return fmt.Errorf("nodeapi: the server presented %s, not %s", id, want)
		}
		return nil
	}
}

// Attest proves what node this is to a server with the given node
// attestor, and returns the agent's SVID for key.
func Attest(ctx context.Context, cfg ClientConfig, attestor attest.NodeAttestorClient, key crypto.Signer) (*AgentSVID, error) {
	if err := cfg.check(!cfg.InsecureBootstrap); err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true} //nolint:gosec // verified below
	var rec verifyRecorder
	if cfg.InsecureBootstrap {
		if cfg.Logger != nil {
			cfg.Logger.Warn("attesting without verifying the server (insecure bootstrap)")
		}
	} else {
		tc.VerifyConnection = rec.wrap(serverVerifier(cfg))
	}
	cc, err := dial(cfg, tc)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	payload, err := attestor.Payload(ctx)
	if err != nil {
		return nil, fmt.Errorf("nodeapi: %w: payload: %w", ErrNodeAttestor, err)
	}
	csr, err := NewCSR(key, spiffeid.ID{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := nodepb.NewNodeClient(cc).Attest(ctx)
	if err != nil {
		return nil, rec.explain(callError("attesting", err))
	}
	if err := stream.Send(&nodepb.AttestRequest{AttestorType: attestor.Type(), Payload: payload, Csr: csr}); err != nil {
		return nil, rec.explain(callError("attesting", recvErr(stream, err)))
	}
	for range 16 {
		resp, err := stream.Recv()
		if err != nil {
			return nil, rec.explain(callError("attesting", err))
		}
		if resp.Result != nil {
			return agentSVIDFromPB(cfg.TrustDomain, resp.Result, key)
		}
		answer, err := attestor.Respond(ctx, resp.Challenge)
		if err != nil {
			return nil, fmt.Errorf("nodeapi: %w: answering the challenge: %w", ErrNodeAttestor, err)
		}
		if err := stream.Send(&nodepb.AttestRequest{ChallengeResponse: answer}); err != nil {
			return nil, rec.explain(callError("attesting", recvErr(stream, err)))
		}
	}
	return nil, errors.New("nodeapi: attesting: too many challenges")
}

// recvErr returns the status of a stream whose Send failed with io.EOF:
// the server ended the call, and Recv says why.
func recvErr(stream grpc.BidiStreamingClient[nodepb.AttestRequest, nodepb.AttestResponse], err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil {
			return rerr
		}
	}
	return err
}

// callError turns a gRPC error into one that names what failed and keeps
// the server's message; status.Code still works on it.
func callError(what string, err error) error {
	return &CallError{What: what, Status: status.Convert(err)}
}

// CallError is a failed call to a server.
type CallError struct {
	// What the client was doing.
	What string
	// Status is the gRPC status the call ended with.
	Status *status.Status
}

// Error returns "nodeapi: <what>: <code>: <message>".
func (e *CallError) Error() string {
	return fmt.Sprintf("nodeapi: %s: %s: %s", e.What, e.Status.Code(), e.Status.Message())
}

// GRPCStatus lets status.Code and status.FromError see the code.
func (e *CallError) GRPCStatus() *status.Status { return e.Status }

// IsRefused reports whether err says the server refused the agent for good
// (PermissionDenied or Unauthenticated) rather than failed for the moment.
func IsRefused(err error) bool {
	var ce *CallError
	if !errors.As(err, &ce) {
		return false
	}
	c := ce.Status.Code()
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

func agentSVIDFromPB(td spiffeid.TrustDomain, p *nodepb.AgentSVID, key crypto.Signer) (*AgentSVID, error) {
	chain, err := parseChain(p.CertChain)
	if err != nil {
		return nil, err
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return nil, fmt.Errorf("nodeapi: the agent SVID: %w", err)
	}
	if id.TrustDomain() != td || id.String() != p.SpiffeId {
		return nil, fmt.Errorf("nodeapi: the server issued %s, outside trust domain %s", id, td)
	}
	if !publickey.Equal(chain[0].PublicKey, key.Public()) {
		return nil, errors.New("nodeapi: the agent SVID does not certify the agent's key")
	}
	b, err := spiffebundle.Parse(td, p.Bundle)
	if err != nil {
		return nil, fmt.Errorf("nodeapi: the bundle from the server: %w", err)
	}
	if _, _, err := x509svid.Verify(chain, b); err != nil {
		return nil, fmt.Errorf("nodeapi: the agent SVID does not verify with the server's bundle: %w", err)
	}
	return &AgentSVID{ID: id, Certificates: chain, Bundle: b}, nil
}

// Client is an agent's authenticated connection to its servers: every
// call is made over mutual TLS with the agent's SVID. It is safe for
// concurrent use.
type Client struct {
	cfg ClientConfig
	tc  *tls.Config

	mu      sync.Mutex
	cur     *conn    // the connection new calls go to
	servers []string // the order cur tries the servers in
	closed  bool
	stop    chan struct{}  // closed by Close: the draining connections close at once
	drains  sync.WaitGroup // the goroutines that close draining connections

	// cas holds the CA certificates of signed chains, parsed once and
	// shared by every SVID they signed: an agent holding 10,000 SVIDs
	// keeps one copy of its CA, not 10,000.
	casMu sync.Mutex
	cas   map[string]*x509.Certificate
}

// maxCachedCAs bounds Client.cas; a rotation adds one CA at a time.
const maxCachedCAs = 64

// parseSignedChain parses a chain from a signing call, sharing the parsed
// CA certificates between calls.
func (c *Client) parseSignedChain(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 || len(ders) > MaxChainLength {
		return parseChain(ders) // for its error
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		return nil, fmt.Errorf("nodeapi: certificate 0 of the chain: %w", err)
	}
	out := []*x509.Certificate{leaf}
	c.casMu.Lock()
	defer c.casMu.Unlock()
	if c.cas == nil || len(c.cas) > maxCachedCAs {
		c.cas = make(map[string]*x509.Certificate)
	}
	for i, der := range ders[1:] {
		ca, ok := c.cas[string(der)]
		if !ok {
			if ca, err = x509.ParseCertificate(der); err != nil {
				return nil, fmt.Errorf("nodeapi: certificate %d of the chain: %w", i+1, err)
			}
			c.cas[string(der)] = ca
		}
		out = append(out, ca)
	}
	return out, nil
}

// Dial returns a client that authenticates with the SVID svid returns at
// each handshake (so that a renewed SVID is used from the next
// connection on: see Reconnect) and verifies the servers with cfg.Bundle.
// It connects lazily; calls wait for a server to answer.
func Dial(cfg ClientConfig, svid x509svid.Source) (*Client, error) {
	if err := cfg.check(true); err != nil {
		return nil, err
	}
	if svid == nil {
		return nil, errors.New("nodeapi: Dial needs an SVID source")
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies
		VerifyConnection:   serverVerifier(cfg),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			s, err := svid.GetX509SVID()
			if err != nil {
				return nil, err
			}
			return &tls.Certificate{Certificate: wire.ChainToDER(s.Certificates), PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}, nil
		},
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	cc, err := dial(cfg, tc)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, tc: tc, cur: newConn(cc), servers: cfg.Servers, stop: make(chan struct{})}, nil
}

// conn is one gRPC connection of a Client, with the calls in flight on it.
type conn struct {
	cc      *grpc.ClientConn
	nc      nodepb.NodeClient
	calls   int             // calls in flight; guarded by Client.mu
	retired bool            // no new call goes to it; guarded by Client.mu
	moved   context.Context // done when retired: entry streams on it end
	move    context.CancelFunc
	idle    chan struct{} // closed once retired with no call in flight
}

func newConn(cc *grpc.ClientConn) *conn {
	// A context rather than a channel: a stream follows it with
	// context.AfterFunc, which costs no goroutine while it waits.
	moved, move := context.WithCancel(context.Background())
	return &conn{cc: cc, nc: nodepb.NewNodeClient(cc), moved: moved, move: move, idle: make(chan struct{})}
}

// errClosed fails the calls made after Close, as gRPC fails those made on
// a closed connection.
var errClosed = status.Error(codes.Canceled, "the client is closed")

// acquire returns the connection a new call goes to, counting the call
// in flight on it until release.
func (c *Client) acquire() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	c.cur.calls++
	return c.cur, nil
}

// release ends a call that acquire counted.
func (c *Client) release(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn.calls--
	if cn.retired && cn.calls == 0 {
		close(cn.idle) // retired conns are never acquired again: once
	}
}

// ErrReconnected is wrapped by the error of [Client.Sync] when
// [Client.Reconnect] moved the client to a new connection while the
// entry stream was open, which ends the stream on the old one. The caller
// opens the stream again, at once: over the new connection, with the
// revisions it holds, it is brought up to date without losing an update.
var ErrReconnected = errors.New("nodeapi: the client moved to a new connection")

// Reconnect moves the client to a new connection, which presents the SVID
// the source given to Dial returns at its handshake: after a renewal, the
// servers see the new SVID from the client's next call on. servers, when
// not empty, are the addresses to try, in order, instead of those used so
// far (ClientConfig.Servers at first).
//
// New calls go to the new connection. The calls in flight on the old one
// finish there: it is closed once they have, or after drain, whichever
// comes first; a drain of zero or less closes it at once, which fails the
// calls in flight on it with codes.Canceled (for a connection that seems
// stalled, whose calls the caller would rather make again over the new
// one). Entry streams ([Client.Sync]) on the old connection end at once,
// with an error wrapping [ErrReconnected]. Close closes the draining
// connections at once too.
//
// It fails when the client is closed, or the new connection cannot be
// set up; the client then keeps the connection it has.
func (c *Client) Reconnect(servers []string, drain time.Duration) error {
	cfg := c.cfg
	c.mu.Lock()
	cfg.Servers = c.servers
	c.mu.Unlock()
	if len(servers) > 0 {
		cfg.Servers = slices.Clone(servers)
	}
	cc, err := dial(cfg, c.tc)
	if err != nil {
		return err
	}
	next := newConn(cc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = cc.Close() // never used
		return callError("reconnecting", errClosed)
	}
	old := c.cur
	c.cur, c.servers = next, cfg.Servers
	old.retired = true
	old.move()
	if old.calls == 0 {
		close(old.idle)
	}
	if drain <= 0 {
		_ = old.cc.Close() // its calls fail with Canceled; the error is always nil or "closing"
		return nil
	}
	c.drains.Go(func() { c.drain(old, drain) })
	return nil
}

// drain closes a retired connection once its calls are done, after at
// most bound, or when the client is closed.
func (c *Client) drain(cn *conn, bound time.Duration) {
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-cn.idle:
	case <-c.stop:
	case <-t.C:
		if c.cfg.Logger != nil {
			c.mu.Lock()
			calls := cn.calls
			c.mu.Unlock()
			c.cfg.Logger.Warn("closing an old connection to the servers with calls still in flight", "calls", calls, "drain", bound)
		}
	}
	_ = cn.cc.Close() // the error is always nil or "closing"
}

// Close closes the connections, the draining ones (see Reconnect) too,
// which fails the calls in flight on them, and returns once they are
// closed. Later calls fail with codes.Canceled. Close is idempotent and
// safe for concurrent use.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.drains.Wait()
		return nil
	}
	c.closed = true
	close(c.stop)
	cur := c.cur
	c.mu.Unlock()
	err := cur.cc.Close()
	c.drains.Wait()
	if err != nil {
		return fmt.Errorf("nodeapi: %w", err)
	}
	return nil
}

// RenewAgent asks for a new agent SVID for key.
func (c *Client) RenewAgent(ctx context.Context, key crypto.Signer) (*AgentSVID, error) {
	csr, err := NewCSR(key, spiffeid.ID{})
	if err != nil {
		return nil, err
	}
	cn, err := c.acquire()
	if err != nil {
		return nil, callError("renewing the agent SVID", err)
	}
	resp, err := cn.nc.RenewAgent(ctx, &nodepb.RenewAgentRequest{Csr: csr})
	c.release(cn)
	if err != nil {
		return nil, callError("renewing the agent SVID", err)
	}
	if resp.Svid == nil {
		return nil, errors.New("nodeapi: renewing the agent SVID: empty answer")
	}
	return agentSVIDFromPB(c.cfg.TrustDomain, resp.Svid, key)
}

// X509SVIDRequest asks for an X509-SVID for an entry.
type X509SVIDRequest struct {
	// EntryID is the entry's ID.
	EntryID string
	// CSR is a DER PKCS#10 request for the SVID's key; see NewCSR.
	CSR []byte
}

// X509SVIDResult answers one X509SVIDRequest.
type X509SVIDResult struct {
	// Certificates is the SVID, leaf first, then the CA chain.
	Certificates []*x509.Certificate
	// Err says why the server did not sign; nil on success.
	Err error
}

// SignX509SVIDs has the server sign X509-SVIDs, in calls of at most
// MaxBatch requests. Result i answers request i.
func (c *Client) SignX509SVIDs(ctx context.Context, reqs []X509SVIDRequest) ([]X509SVIDResult, error) {
	out := make([]X509SVIDResult, 0, len(reqs))
	for start := 0; start < len(reqs); start += MaxBatch {
		chunk := reqs[start:min(start+MaxBatch, len(reqs))]
		in := &nodepb.SignX509SVIDsRequest{Requests: make([]*nodepb.X509SVIDRequest, len(chunk))}
		for i, r := range chunk {
			in.Requests[i] = &nodepb.X509SVIDRequest{EntryId: r.EntryID, Csr: r.CSR}
		}
		cn, err := c.acquire()
		if err != nil {
			return nil, callError("signing X509-SVIDs", err)
		}
		resp, err := cn.nc.SignX509SVIDs(ctx, in)
		c.release(cn)
		if err != nil {
			return nil, callError("signing X509-SVIDs", err)
		}
		if len(resp.Results) != len(chunk) {
			return nil, fmt.Errorf("nodeapi: signing X509-SVIDs: %d results for %d requests", len(resp.Results), len(chunk))
		}
		for i, r := range resp.Results {
			if r.GetError() != "" {
				out = append(out, X509SVIDResult{Err: fmt.Errorf("nodeapi: entry %s: %s", chunk[i].EntryID, r.Error)})
				continue
			}
			chain, err := c.parseSignedChain(r.GetCertChain())
			out = append(out, X509SVIDResult{Certificates: chain, Err: err})
		}
	}
	return out, nil
}

// SignJWTSVID has the server sign a JWT-SVID for an entry.
func (c *Client) SignJWTSVID(ctx context.Context, entryID string, audience []string) (string, error) {
	cn, err := c.acquire()
	if err != nil {
		return "", callError("signing a JWT-SVID", err)
	}
	resp, err := cn.nc.SignJWTSVID(ctx, &nodepb.SignJWTSVIDRequest{EntryId: entryID, Audience: audience})
	c.release(cn)
	if err != nil {
		return "", callError("signing a JWT-SVID", err)
	}
	return resp.Token, nil
}

// ErrNoWITSVIDs is wrapped by the error of [Client.SignWITSVID] when the
// server does not issue WIT-SVIDs: WIT keys are not enabled there, or the
// server predates them (both answer Unimplemented). Asking again does not
// help until the server is reconfigured.
var ErrNoWITSVIDs = errors.New("nodeapi: the server does not issue WIT-SVIDs")

// SignWITSVID has the server sign a WIT-SVID for an entry, binding pub
// (the "cnf" key, whose private key stays with the caller). keyAlgorithm is
// the JWS algorithm of the key's proofs of possession; empty means the
// server's default for the key (ES256, ES384 or ES512 by curve, RS256).
func (c *Client) SignWITSVID(ctx context.Context, entryID string, pub crypto.PublicKey, keyAlgorithm string) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("nodeapi: encoding the WIT-SVID key: %w", err)
	}
	cn, err := c.acquire()
	if err != nil {
		return "", callError("signing a WIT-SVID", err)
	}
	resp, err := cn.nc.SignWITSVID(ctx, &nodepb.SignWITSVIDRequest{EntryId: entryID, PublicKey: der, KeyAlgorithm: keyAlgorithm})
	c.release(cn)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return "", fmt.Errorf("%w: %w", ErrNoWITSVIDs, callError("signing a WIT-SVID", err))
		}
		return "", callError("signing a WIT-SVID", err)
	}
	if resp.Token == "" {
		return "", errors.New("nodeapi: the server returned an empty WIT-SVID")
	}
	return resp.Token, nil
}

// Update is one message of the entry stream.
type Update struct {
	// Upserts are entries new to the agent or changed.
	Upserts []registry.Entry
	// Deleted are the IDs of entries the agent may no longer serve.
	Deleted []string
	// Bundle is the trust domain's bundle when it changed, else nil.
	Bundle *spiffebundle.Bundle
	// FederatedSet says whether FederatedBundles is the new complete set.
	FederatedSet bool
	// FederatedBundles are the bundles of foreign trust domains.
	FederatedBundles []*spiffebundle.Bundle
	// TaintedX509CAs are the CAs whose SVIDs must be replaced now.
	TaintedX509CAs []*x509.Certificate
	// ActiveX509CA is the CA that signs now, when known.
	ActiveX509CA *x509.Certificate
	// TaintedJWTKeyIDs and TaintedWITKeyIDs are the kids of the JWT and
	// WIT keys whose tokens must be replaced now. A server of a version
	// before them sends none.
	TaintedJWTKeyIDs, TaintedWITKeyIDs []string
}

// Sync opens the entry stream and calls fn with each update, the first
// of which brings an agent holding known (entry ID -> revision) up to
// date. It returns when the stream ends or fn fails; the caller reconnects.
// A Reconnect ends it, once fn has returned, with an error wrapping
// ErrReconnected.
func (c *Client) Sync(ctx context.Context, known map[string]int64, fn func(Update) error) error {
	req := &nodepb.SyncRequest{Known: make([]*nodepb.EntryRevision, 0, len(known))}
	for id, rev := range known {
		req.Known = append(req.Known, &nodepb.EntryRevision{Id: id, Revision: rev})
	}
	cn, err := c.acquire()
	if err != nil {
		return callError("syncing", err)
	}
	defer c.release(cn)
	// The stream, not fn, ends when the client moves: an update received
	// is applied in full.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(cn.moved, cancel)()
	fail := func(err error) error {
		if cn.moved.Err() != nil {
			return fmt.Errorf("%w: %w", ErrReconnected, callError("syncing", err))
		}
		return callError("syncing", err)
	}
	stream, err := cn.nc.Sync(ctx, req)
	if err != nil {
		return fail(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fail(err)
		}
		u, err := c.update(resp)
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
}

func (c *Client) update(resp *nodepb.SyncResponse) (Update, error) {
	td := c.cfg.TrustDomain
	var u Update
	for _, p := range resp.Upserts {
		e, err := wire.EntryFromPB(p)
		if err != nil {
			return Update{}, err
		}
		u.Upserts = append(u.Upserts, e)
	}
	for _, id := range resp.DeletedIds {
		if !registry.ValidEntryID(id) {
			return Update{}, fmt.Errorf("nodeapi: invalid deleted entry ID %q", wire.Truncate(id))
		}
		u.Deleted = append(u.Deleted, id)
	}
	if len(resp.Bundle) > 0 {
		b, err := spiffebundle.Parse(td, resp.Bundle)
		if err != nil {
			return Update{}, fmt.Errorf("nodeapi: the bundle from the server: %w", err)
		}
		u.Bundle = b
	}
	if resp.FederatedBundlesSet {
		u.FederatedSet = true
		for name, doc := range resp.FederatedBundles {
			ftd, err := spiffeid.TrustDomainFromString(name)
			if err != nil || ftd == td {
				return Update{}, fmt.Errorf("nodeapi: invalid federated trust domain %q", wire.Truncate(name))
			}
			b, err := spiffebundle.Parse(ftd, doc)
			if err != nil {
				return Update{}, fmt.Errorf("nodeapi: the bundle of %s: %w", ftd, err)
			}
			u.FederatedBundles = append(u.FederatedBundles, b)
		}
	}
	for _, der := range resp.TaintedX509Cas {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return Update{}, fmt.Errorf("nodeapi: a tainted CA: %w", err)
		}
		u.TaintedX509CAs = append(u.TaintedX509CAs, cert)
	}
	if len(resp.ActiveX509Ca) > 0 {
		cert, err := x509.ParseCertificate(resp.ActiveX509Ca)
		if err != nil {
			return Update{}, fmt.Errorf("nodeapi: the active CA: %w", err)
		}
		u.ActiveX509CA = cert
	}
	var err error
	if u.TaintedJWTKeyIDs, err = taintedKIDs("JWT", resp.TaintedJwtKeyIds); err != nil {
		return Update{}, err
	}
	if u.TaintedWITKeyIDs, err = taintedKIDs("WIT", resp.TaintedWitKeyIds); err != nil {
		return Update{}, err
	}
	return u, nil
}

// taintedKIDs checks the kids of tainted keys of one kind: each an
// authority ID as the registry stores it (1 to registry.MaxAuthorityIDLen
// bytes of UTF-8 text without control characters).
func taintedKIDs(kind string, kids []string) ([]string, error) {
	for _, kid := range kids {
		if kid == "" || len(kid) > registry.MaxAuthorityIDLen || !utf8.ValidString(kid) ||
			strings.IndexFunc(kid, unicode.IsControl) >= 0 {
			return nil, fmt.Errorf("nodeapi: invalid kid of a tainted %s key %q", kind, wire.Truncate(kid))
		}
	}
	return kids, nil
}
