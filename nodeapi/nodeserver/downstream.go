package nodeserver

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Failures of the calls of downstream servers.
var (
	errNoDownstreamSVID = &peerError{codes.Unauthenticated, "this call needs the X509-SVID of a downstream entry", slog.LevelWarn}
	errNotDownstream    = &peerError{codes.PermissionDenied, "the caller's SPIFFE ID has no downstream entry", slog.LevelWarn}
	errExpiredSVID      = &peerError{codes.Unauthenticated, "the X509-SVID has expired", slog.LevelWarn}
	errNoPublication    = &peerError{codes.Unimplemented, "this server keeps no JWT keys of downstream servers", slog.LevelWarn}
)

// maxDownstreamEntries bounds the entries of one SPIFFE ID read to find a
// downstream one.
const maxDownstreamEntries = 1000

// authenticateDownstream returns the SPIFFE ID of the caller, a downstream
// server: its X509-SVID, which VerifyConnection checked against the bundle,
// must be of the trust domain, unexpired, and its SPIFFE ID that of a
// downstream entry that has not expired. The store is read, not the index,
// so that an entry deleted or changed through another server stops
// authorizing at once.
func (svc *service) authenticateDownstream(ctx context.Context) (spiffeid.ID, error) {
	s := svc.s
	leaf, ok := peerLeaf(ctx)
	if !ok {
		return spiffeid.ID{}, errNoDownstreamSVID
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil || id.TrustDomain() != s.td {
		return spiffeid.ID{}, errForeignSVID
	}
	now := s.now()
	if now.After(leaf.NotAfter) {
		return spiffeid.ID{}, fmt.Errorf("%w: %s", errExpiredSVID, id)
	}
	page := registry.Page{Size: 100}
	for read := 0; read < maxDownstreamEntries; {
		listCtx, cancel := s.storeCall(ctx)
		entries, next, err := s.cfg.Registry.List(listCtx, registry.Filter{BySPIFFEID: id}, page)
		cancel()
		if err != nil {
			return spiffeid.ID{}, unavailable("reading the entries of a downstream server", err)
		}
		for _, e := range entries {
			if e.Downstream && (e.ExpiresAt.IsZero() || now.Before(e.ExpiresAt)) {
				return id, nil
			}
		}
		read += len(entries)
		if next == "" {
			break
		}
		page.Token = next
	}
	return spiffeid.ID{}, fmt.Errorf("%w: %s", errNotDownstream, id)
}

// MintX509CA signs an intermediate CA certificate for a downstream server
// of the trust domain: the key of the request's CSR, the trust domain's
// SPIFFE ID as its only URI SAN, a lifetime of at most the one asked for
// and never past the expiry of the server's own CA. It answers with the
// trust domain's roots beside the chain.
func (svc *service) MintX509CA(ctx context.Context, req *nodepb.MintX509CARequest) (*nodepb.MintX509CAResponse, error) {
	s := svc.s
	id, err := svc.authenticateDownstream(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Csr) > nodeapi.MaxCSRSize {
		return nil, invalidf("the CSR is larger than %d bytes", nodeapi.MaxCSRSize)
	}
	if req.TtlSeconds < 0 {
		return nil, invalidf("the TTL must not be negative")
	}
	csr, err := x509.ParseCertificateRequest(req.Csr)
	if err != nil {
		return nil, invalidf("invalid CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidf("invalid CSR signature: %v", err)
	}
	for _, u := range csr.URIs {
		if u.String() != s.td.IDString() {
			return nil, invalidf("the CSR names %q: a downstream CA is of trust domain %q only", wire.Truncate(u.String()), s.td)
		}
	}
	ttl := time.Duration(0)
	if req.TtlSeconds > 0 {
		ttl = time.Duration(min(req.TtlSeconds, math.MaxInt64/int64(time.Second))) * time.Second
	}
	authority := s.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, fmt.Errorf("%w: no active X.509 CA", errUnavailable)
	}
	start := s.observeStart()
	chain, err := authority.SignX509CA(ctx, ca.X509CAParams{PublicKey: csr.PublicKey, TrustDomain: s.td, TTL: ttl})
	s.signed(svidX509CA, start, err)
	if err != nil {
		return nil, fmt.Errorf("signing a downstream CA for %s: %w", id, err)
	}
	out := &nodepb.MintX509CAResponse{}
	for _, c := range chain {
		out.CertChain = append(out.CertChain, c.Raw)
	}
	for _, c := range s.cfg.Authority.Bundle().X509Authorities() {
		out.Roots = append(out.Roots, c.Raw)
	}
	s.log.Info("signed a downstream CA", "spiffe_id", id, "expires", chain[0].NotAfter)
	return out, nil
}

// Bounds of PublishJWTKeys.
const (
	maxPublishedKeys  = 64
	maxPublishedKeyID = 256
)

// PublishJWTKeys takes the JWT keys of a downstream server (its own and
// those of the servers below it) into the trust domain's bundle, replacing
// what it published before, and answers with the bundle.
func (svc *service) PublishJWTKeys(ctx context.Context, req *nodepb.PublishJWTKeysRequest) (*nodepb.PublishJWTKeysResponse, error) {
	s := svc.s
	id, err := svc.authenticateDownstream(ctx)
	if err != nil {
		return nil, err
	}
	if s.cfg.Downstream == nil {
		return nil, errNoPublication
	}
	if len(req.Keys) > maxPublishedKeys {
		return nil, invalidf("%d JWT keys exceed %d", len(req.Keys), maxPublishedKeys)
	}
	keys := make(map[string]crypto.PublicKey, len(req.Keys))
	for _, k := range req.Keys {
		switch {
		case k.GetKeyId() == "":
			return nil, invalidf("a JWT key has no key ID")
		case len(k.KeyId) > maxPublishedKeyID:
			return nil, invalidf("a key ID is longer than %d bytes", maxPublishedKeyID)
		}
		if _, dup := keys[k.KeyId]; dup {
			return nil, invalidf("key ID %q is given twice", wire.Truncate(k.KeyId))
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, invalidf("the key of key ID %q: %v", wire.Truncate(k.KeyId), err)
		}
		keys[k.KeyId] = pub
	}
	if err := s.cfg.Downstream.PutDownstreamJWTKeys(ctx, id, keys); err != nil {
		return nil, unavailable("keeping the JWT keys of a downstream server", err)
	}
	doc, err := s.cfg.Authority.Bundle().Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle: %w", err)
	}
	s.log.Debug("a downstream server published its JWT keys", "spiffe_id", id, "keys", len(keys))
	return &nodepb.PublishJWTKeysResponse{Bundle: doc}, nil
}
