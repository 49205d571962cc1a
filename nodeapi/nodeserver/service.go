package nodeserver

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/parallel"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/syncstate"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// service implements the gRPC service on a Server, for one gRPC server.
type service struct {
	s *Server
	// drain is closed when the gRPC server stops (Serve's ctx is done);
	// nil, never closed, for GRPCServer.
	drain <-chan struct{}
}

// peerLeaf returns the certificate the caller presented in the TLS
// handshake, which VerifyConnection checked against the bundle.
func peerLeaf(ctx context.Context) (*x509.Certificate, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, false
	}
	return info.State.PeerCertificates[0], true
}

// leafExpiry returns the expiry of the caller's certificate.
func leafExpiry(ctx context.Context) time.Time {
	if leaf, ok := peerLeaf(ctx); ok {
		return leaf.NotAfter
	}
	return time.Time{}
}

// authenticate returns the record of the agent that made the call: its
// SVID must be the one the server issued last (or the one before, until
// the agent uses the new one), unexpired, and the agent neither evicted nor
// banned.
func (svc *service) authenticate(ctx context.Context) (registry.Agent, error) {
	s := svc.s
	leaf, ok := peerLeaf(ctx)
	if !ok {
		return registry.Agent{}, errNoSVID
	}
	id, err := x509svid.IDFromCert(leaf)
	if err != nil || id.TrustDomain() != s.td {
		return registry.Agent{}, errForeignSVID
	}
	if s.now().After(leaf.NotAfter) {
		return registry.Agent{}, fmt.Errorf("%w: agent %s", errExpired, id)
	}
	a, found, err := s.agentRecord(ctx, id)
	if err != nil {
		return registry.Agent{}, err
	}
	serial := leaf.SerialNumber.Text(16)
	if found && serial != a.SerialNumber && serial != a.PreviousSerialNumber {
		// The cached record may be stale: the agent may have renewed through
		// another server sharing the records. Read it again before refusing.
		if a, found, err = s.storedAgentRecord(ctx, id); err != nil {
			return registry.Agent{}, err
		}
	}
	switch {
	case !found:
		return registry.Agent{}, fmt.Errorf("%w: agent %s has no record", errNotAttested, id)
	case a.Banned:
		return registry.Agent{}, fmt.Errorf("%w: agent %s", errBanned, id)
	case serial == a.SerialNumber && a.PreviousSerialNumber != "":
		// The agent uses its new SVID: the one before is retired. The
		// record is read from the store first, so that a ban or eviction
		// made meanwhile through another server is not written over, nor
		// a renewal made meanwhile by another call of the agent.
		unlock := s.records.lock(id)
		defer unlock()
		cur, err := s.freshRecord(ctx, id)
		switch {
		case err != nil:
			return registry.Agent{}, err
		case serial == cur.SerialNumber && cur.PreviousSerialNumber != "":
			cur.PreviousSerialNumber = ""
			return s.updateAgent(ctx, cur)
		case serial == cur.SerialNumber:
			return cur, nil // retired meanwhile, through another server
		case serial == cur.PreviousSerialNumber:
			return cur, nil // renewed again meanwhile: the grace of the one before
		}
		// Superseded meanwhile (attested again): the store, read last,
		// decides, not the cache.
		return registry.Agent{}, fmt.Errorf("%w: agent %s presented serial %s, the record has %s",
			errSuperseded, id, serial, cur.SerialNumber)
	case serial == a.SerialNumber:
		return a, nil
	case serial == a.PreviousSerialNumber && a.PreviousSerialNumber != "":
		return a, nil
	}
	return registry.Agent{}, fmt.Errorf("%w: agent %s presented serial %s", errSuperseded, id, serial)
}

// freshRecord reads an agent's record from the store, not the cache, and
// refuses an agent evicted or banned meanwhile.
func (s *Server) freshRecord(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	cur, found, err := s.storedAgentRecord(ctx, id)
	switch {
	case err != nil:
		return registry.Agent{}, err
	case !found:
		return registry.Agent{}, fmt.Errorf("%w: agent %s", errEvicted, id)
	case cur.Banned:
		return registry.Agent{}, fmt.Errorf("%w: agent %s", errBanned, id)
	}
	return cur, nil
}

// Attest runs node attestation and issues the agent's SVID.
func (svc *service) Attest(stream grpc.BidiStreamingServer[nodepb.AttestRequest, nodepb.AttestResponse]) (err error) {
	s := svc.s
	ctx, cancel := context.WithTimeout(stream.Context(), s.cfg.AttestTimeout)
	defer cancel()
	recv := svc.receiver(ctx, stream)
	first, err := recv(ctx)
	if err != nil {
		return attestEnded(ctx, err)
	}
	switch {
	case len(first.Payload) > attest.MaxNodePayload:
		return invalidf("attestation payload of %d bytes exceeds %d", len(first.Payload), attest.MaxNodePayload)
	case len(first.Csr) == 0 || len(first.Csr) > nodeapi.MaxCSRSize:
		return invalidf("the first attestation message needs a CSR of at most 16 KiB")
	}
	attestor, ok := s.attestors[first.AttestorType]
	if !ok {
		return invalidf("unknown node attestor type %q", wire.Truncate(first.AttestorType))
	}
	pub, err := csrKey(first.Csr)
	if err != nil {
		return err
	}
	if o := s.cfg.Observer; o != nil {
		// Once the attestor is known: an attestor type the agent made up
		// never becomes a label.
		defer func() { o.NodeAttested(attestor.Type(), attestOutcome(err)) }()
	}
	defer func() {
		if err != nil {
			err = &attestorError{attestor: attestor.Type(), err: err}
		}
	}()
	challenge := func(ctx context.Context, c []byte) ([]byte, error) {
		if err := stream.Send(&nodepb.AttestResponse{Challenge: c}); err != nil {
			return nil, fmt.Errorf("%w: sending a challenge: %w", errStream, err)
		}
		resp, err := recv(ctx)
		if err != nil {
			return nil, err
		}
		if len(resp.ChallengeResponse) > attest.MaxNodePayload {
			return nil, fmt.Errorf("%w: challenge response too large", attest.ErrNodeRejected)
		}
		return resp.ChallengeResponse, nil
	}
	res, err := attestor.Attest(ctx, s.td, first.Payload, challenge)
	switch {
	case errors.Is(err, attest.ErrNodeRejected):
		return fmt.Errorf("%w: node attestor %s: %w", errAttestRefused, attestor.Type(), err)
	case err != nil && ctx.Err() != nil:
		return attestEnded(ctx, err)
	case err != nil:
		return unavailable("node attestor "+attestor.Type(), err)
	case res.AgentID.TrustDomain() != s.td || res.AgentID == s.serverID:
		return fmt.Errorf("%w: node attestor %s gave agent ID %s, outside the trust domain or the server's own",
			errAttestorFault, attestor.Type(), res.AgentID)
	}
	// Read from the store, not the cache: a ban made through another server
	// that this one has not read yet must neither be bypassed nor written
	// over by the record below.
	old, found, err := s.storedAgentRecord(ctx, res.AgentID)
	if err != nil {
		return err
	}
	if found && old.Banned {
		return fmt.Errorf("%w: agent %s attested again", errBanned, res.AgentID)
	}
	// A node attestor that does not allow attesting again (join_token: trust
	// on first use) admits an agent ID once: a second proof for an ID in
	// use, such as another token naming it, would take over the identity,
	// and the entries, of the node that holds it. The record's attestor
	// and the new one must both allow it. The agent renews with its SVID
	// instead; an operator who evicts it frees the ID.
	if found && (!old.CanReattest || !res.CanReattest) {
		return fmt.Errorf("%w: agent %s through node attestor %s (the record's, %s, allows it: %t; this one: %t)",
			errNoReattest, res.AgentID, attestor.Type(), old.AttestorType, old.CanReattest, res.CanReattest)
	}
	svid, err := s.issueAgentSVID(ctx, res.AgentID, pub)
	if err != nil {
		return err
	}
	leaf := svid[0]
	if _, err := s.putAgent(ctx, registry.Agent{
		ID:           res.AgentID,
		AttestorType: attestor.Type(),
		Selectors:    res.Selectors.Slice(),
		SerialNumber: leaf.SerialNumber.Text(16),
		ExpiresAt:    leaf.NotAfter,
		CanReattest:  res.CanReattest,
	}); err != nil {
		return err
	}
	s.log.Info("agent attested", "agent", res.AgentID.String(), "attestor", attestor.Type(), "peer", peerAddr(ctx),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	resp, err := s.agentSVIDResponse(res.AgentID, svid)
	if err != nil {
		return err
	}
	if err := stream.Send(&nodepb.AttestResponse{Result: resp}); err != nil {
		return fmt.Errorf("%w: sending the agent SVID: %w", errStream, err)
	}
	return nil
}

// attestEnded is the error of an attestation cut short: by AttestTimeout
// (ctx), or by the agent.
func attestEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", errAttestTimeout, err)
	}
	return err
}

// receiver reads the client's messages on a goroutine of its own, so that
// waiting for one is bounded by ctx (AttestTimeout) and ends when the
// server drains or closes: a stream's Recv only ends with the stream. The goroutine exits when the stream ends, which the
// handler's return makes happen.
func (svc *service) receiver(ctx context.Context, stream grpc.BidiStreamingServer[nodepb.AttestRequest, nodepb.AttestResponse]) func(context.Context) (*nodepb.AttestRequest, error) {
	type result struct {
		msg *nodepb.AttestRequest
		err error
	}
	ch := make(chan result)
	go func() {
		for {
			msg, err := stream.Recv()
			select {
			case ch <- result{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return func(ctx context.Context) (*nodepb.AttestRequest, error) {
		select {
		case r := <-ch:
			switch {
			case errors.Is(r.err, io.EOF):
				return nil, invalidf("the agent ended the stream before attestation was complete")
			case r.err != nil:
				return nil, fmt.Errorf("%w: receiving: %w", errStream, r.err)
			}
			return r.msg, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-svc.drain:
			return nil, errShuttingDown
		case <-svc.s.life.Closed():
			return nil, errShuttingDown
		}
	}
}

// csrKey returns the public key of a DER PKCS#10 request after checking
// its signature: the proof that the agent holds the key. The CA is handed
// the key only, so that what it refuses is the server's concern.
func csrKey(der []byte) (crypto.PublicKey, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, invalidf("invalid CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidf("invalid CSR signature: %v", err)
	}
	return csr.PublicKey, nil
}

// issueAgentSVID signs an agent SVID for pub.
func (s *Server) issueAgentSVID(ctx context.Context, id spiffeid.ID, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	authority := s.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, fmt.Errorf("%w: no active X.509 CA", errUnavailable)
	}
	start := s.observeStart()
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: pub, ID: id, TTL: s.cfg.AgentSVIDTTL})
	s.signed(svidAgent, start, err)
	if err != nil {
		return nil, fmt.Errorf("signing the agent SVID of %s: %w", id, err)
	}
	return chain, nil
}

func (s *Server) agentSVIDResponse(id spiffeid.ID, chain []*x509.Certificate) (*nodepb.AgentSVID, error) {
	doc, err := s.cfg.Authority.Bundle().Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the bundle: %w", err)
	}
	return &nodepb.AgentSVID{SpiffeId: id.String(), CertChain: wire.ChainToDER(chain), Bundle: doc}, nil
}

// RenewAgent issues a new SVID to an authenticated agent.
func (svc *service) RenewAgent(ctx context.Context, req *nodepb.RenewAgentRequest) (*nodepb.RenewAgentResponse, error) {
	s := svc.s
	a, err := svc.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Csr) == 0 || len(req.Csr) > nodeapi.MaxCSRSize {
		return nil, invalidf("renewal needs a CSR of at most 16 KiB")
	}
	pub, err := csrKey(req.Csr)
	if err != nil {
		return nil, err
	}
	chain, err := s.issueAgentSVID(ctx, a.ID, pub)
	if err != nil {
		return nil, err
	}
	// Read the record again from the store: a ban or eviction made through
	// another server since the cache was filled must not be written over;
	// and write it only if it is still there, so that an eviction between
	// this read and the write is not undone either. Another call of the
	// agent may change its serials meanwhile: it waits (see recordLocks),
	// and the SVID presented must still be current or previous.
	unlock := s.records.lock(a.ID)
	defer unlock()
	if a, err = s.freshRecord(ctx, a.ID); err != nil {
		return nil, err
	}
	leaf, _ := peerLeaf(ctx) // authenticate found it
	if serial := leaf.SerialNumber.Text(16); serial != a.SerialNumber && serial != a.PreviousSerialNumber {
		return nil, fmt.Errorf("%w: agent %s presented serial %s, renewed meanwhile to %s",
			errSuperseded, a.ID, serial, a.SerialNumber)
	}
	a.PreviousSerialNumber = a.SerialNumber
	a.SerialNumber = chain[0].SerialNumber.Text(16)
	a.ExpiresAt = chain[0].NotAfter
	if _, err := s.updateAgent(ctx, a); err != nil {
		return nil, err
	}
	s.log.Info("agent SVID renewed", "agent", a.ID.String(), "serial", a.SerialNumber, "not_after", a.ExpiresAt)
	resp, err := s.agentSVIDResponse(a.ID, chain)
	if err != nil {
		return nil, err
	}
	return &nodepb.RenewAgentResponse{Svid: resp}, nil
}

// SignX509SVIDs signs X509-SVIDs for entries the agent is authorized for,
// spreading the work over every core. A request refused or failed alone is
// answered in its result, with the message peerStatus gives.
func (svc *service) SignX509SVIDs(ctx context.Context, req *nodepb.SignX509SVIDsRequest) (*nodepb.SignX509SVIDsResponse, error) {
	s := svc.s
	a, err := svc.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Requests) > nodeapi.MaxBatch {
		return nil, invalidf("%d requests exceed the batch limit of %d", len(req.Requests), nodeapi.MaxBatch)
	}
	authority := s.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, fmt.Errorf("%w: no active X.509 CA", errUnavailable)
	}
	allowed, err := s.authorizedCurrent(ctx, a, func(m map[string]registry.Entry) bool {
		return slices.ContainsFunc(req.Requests, func(r *nodepb.X509SVIDRequest) bool {
			_, ok := m[r.GetEntryId()]
			return r != nil && !ok
		})
	})
	if err != nil {
		return nil, err
	}
	results := make([]*nodepb.X509SVIDResult, len(req.Requests))
	parallel.For(len(req.Requests), func(i int) {
		chain, err := s.signOne(ctx, authority, allowed, req.Requests[i])
		if err != nil {
			_, msg := peerStatus(ctx, s.log, "SignX509SVIDs", fmt.Errorf("agent %s, entry %q: %w", a.ID, wire.Truncate(req.Requests[i].GetEntryId()), err))
			results[i] = &nodepb.X509SVIDResult{Error: msg}
			return
		}
		results[i] = &nodepb.X509SVIDResult{CertChain: wire.ChainToDER(chain)}
	})
	return &nodepb.SignX509SVIDsResponse{Results: results}, nil
}

// signOne signs one X509-SVID of a batch.
func (s *Server) signOne(ctx context.Context, authority *ca.X509Authority, allowed map[string]registry.Entry, r *nodepb.X509SVIDRequest) ([]*x509.Certificate, error) {
	if r == nil {
		return nil, invalidf("empty request")
	}
	e, ok := allowed[r.EntryId]
	if !ok {
		return nil, errNotAuthorized
	}
	if len(r.Csr) == 0 || len(r.Csr) > nodeapi.MaxCSRSize {
		return nil, invalidf("a CSR of 1 to %d bytes is required", nodeapi.MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(r.Csr)
	if err != nil {
		return nil, invalidf("invalid CSR: %v", err)
	}
	switch {
	case len(csr.URIs) > 1:
		return nil, invalidf("the CSR has %d URI SANs; at most one, the entry's SPIFFE ID, is allowed", len(csr.URIs))
	case len(csr.URIs) == 1 && csr.URIs[0].String() != e.SPIFFEID.String():
		return nil, invalidf("the CSR asks for %s, but entry %s is for %s", wire.Truncate(csr.URIs[0].String()), e.ID, e.SPIFFEID)
	}
	ttl := e.X509SVIDTTL
	if ttl == 0 {
		ttl = s.cfg.X509SVIDTTL
	}
	// Proof of possession: the CSR is signed by the key to certify. It is
	// checked here, once, and the key handed to the CA.
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidf("invalid CSR signature: %v", err)
	}
	start := s.observeStart()
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: csr.PublicKey, ID: e.SPIFFEID, DNSNames: e.DNSNames, TTL: ttl})
	s.signed(svidX509, start, err)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return chain, nil
}

// SignJWTSVID signs a JWT-SVID for an entry the agent is authorized for.
func (svc *service) SignJWTSVID(ctx context.Context, req *nodepb.SignJWTSVIDRequest) (*nodepb.SignJWTSVIDResponse, error) {
	s := svc.s
	a, err := svc.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	allowed, err := s.authorizedCurrent(ctx, a, func(m map[string]registry.Entry) bool {
		_, ok := m[req.EntryId]
		return !ok
	})
	if err != nil {
		return nil, err
	}
	e, ok := allowed[req.EntryId]
	if !ok {
		return nil, fmt.Errorf("%w: agent %s, entry %q", errNotAuthorized, a.ID, wire.Truncate(req.EntryId))
	}
	// JWT rule 7, checked here so that what the CA refuses is the
	// server's concern, not the agent's.
	switch {
	case len(req.Audience) == 0:
		return nil, invalidf("a JWT-SVID needs an audience")
	case len(req.Audience) > nodeapi.MaxAudiences:
		return nil, invalidf("%d audience values exceed %d", len(req.Audience), nodeapi.MaxAudiences)
	case slices.Contains(req.Audience, ""):
		return nil, invalidf("audience values must not be empty")
	}
	authority := s.cfg.Authority.JWTAuthority()
	if authority == nil {
		return nil, fmt.Errorf("%w: no active JWT key", errUnavailable)
	}
	ttl := e.JWTSVIDTTL
	if ttl == 0 {
		ttl = s.cfg.JWTSVIDTTL
	}
	start := s.observeStart()
	token, err := authority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: e.SPIFFEID, Audience: req.Audience, TTL: ttl, JTI: s.cfg.JWTSVIDJTI, Issuer: s.cfg.JWTIssuer})
	s.signed(svidJWT, start, err)
	if err != nil {
		return nil, fmt.Errorf("signing a JWT-SVID for entry %s: %w", e.ID, err)
	}
	return &nodepb.SignJWTSVIDResponse{Token: token}, nil
}

// SignWITSVID signs a WIT-SVID for an entry the agent is authorized for,
// binding the public key the agent sent (WIT rule 6). It is authorized as
// SignX509SVIDs is: only the entries the agent may obtain, read again
// when the agent's view lacks the entry. A server whose authority has no
// WIT key answers Unimplemented.
func (svc *service) SignWITSVID(ctx context.Context, req *nodepb.SignWITSVIDRequest) (*nodepb.SignWITSVIDResponse, error) {
	s := svc.s
	a, err := svc.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	wi, ok := s.cfg.Authority.(ca.WITIssuer)
	if !ok {
		return nil, errNoWIT
	}
	// Sizes first, before anything is parsed or looked up.
	switch {
	case len(req.PublicKey) == 0 || len(req.PublicKey) > nodeapi.MaxPublicKeySize:
		return nil, invalidf("a WIT-SVID needs a public key of 1 to %d bytes", nodeapi.MaxPublicKeySize)
	case len(req.KeyAlgorithm) > nodeapi.MaxKeyAlgorithmSize:
		return nil, invalidf("the key algorithm name exceeds %d bytes", nodeapi.MaxKeyAlgorithmSize)
	}
	allowed, err := s.authorizedCurrent(ctx, a, func(m map[string]registry.Entry) bool {
		_, ok := m[req.EntryId]
		return !ok
	})
	if err != nil {
		return nil, err
	}
	e, ok := allowed[req.EntryId]
	if !ok {
		return nil, fmt.Errorf("%w: agent %s, entry %q", errNotAuthorized, a.ID, wire.Truncate(req.EntryId))
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		return nil, invalidf("the public key is not a PKIX key: %v", err)
	}
	authority := wi.WITAuthority()
	if authority == nil {
		return nil, errNoWIT
	}
	start := s.observeStart()
	token, err := authority.SignWITSVID(ctx, ca.WITSVIDParams{ID: e.SPIFFEID, PublicKey: pub, KeyAlgorithm: req.KeyAlgorithm, TTL: s.cfg.WITSVIDTTL})
	s.signed(svidWIT, start, err)
	if err != nil {
		// The CA refuses keys and algorithms the standard does not allow
		// (WIT rule 6); that is the agent's error, and it learns why: the
		// reason speaks of the key and algorithm it sent.
		if errors.Is(err, ca.ErrInvalidWorkloadKey) {
			return nil, invalidf("the public key cannot be bound to a WIT-SVID: %v", errors.Unwrap(err))
		}
		return nil, fmt.Errorf("signing a WIT-SVID for entry %s: %w", e.ID, err)
	}
	return &nodepb.SignWITSVIDResponse{Token: token}, nil
}

// stopping reports whether the server has begun to drain or stop.
func (svc *service) stopping() bool {
	select {
	case <-svc.drain:
		return true
	case <-svc.s.life.Closed():
		return true
	default:
		return false
	}
}

// Sync streams the entries the agent is authorized for: first what differs
// from what it holds, then every change, as it happens.
func (svc *service) Sync(req *nodepb.SyncRequest, stream grpc.ServerStreamingServer[nodepb.SyncResponse]) error {
	s := svc.s
	ctx := stream.Context()
	a, err := svc.authenticate(ctx)
	if err != nil {
		return err
	}
	if len(req.Known) > 10*nodeapi.MaxBatch*100 {
		return invalidf("too many known entries")
	}
	s.streams.Add(1)
	defer s.streams.Add(-1)
	leaf, _ := peerLeaf(ctx) // authenticate found it
	serial := leaf.SerialNumber.Text(16)
	agentChanged, unfollow := s.agents.Follow(a.ID)
	defer unfollow()
	sent := make(map[string]int64, len(req.Known))
	for _, k := range req.Known {
		if k != nil {
			sent[k.Id] = k.Revision
		}
	}
	st := syncstate.New(sent)
	// What the agent holds may come from another server that had read the
	// registry further than this one: the first answer must not call it
	// deleted before this server has read as far.
	_, err = s.authorizedCurrent(ctx, a, func(m map[string]registry.Entry) bool {
		for id, rev := range sent {
			if e, ok := m[id]; !ok || e.Revision < rev {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	first := true
	for {
		gen, changed := s.watch()
		ownChanged := agentChanged()
		// Look again at the agent's record, the first time too (its
		// serials may have changed since authenticate, before the stream
		// followed them): it may have been evicted or banned, or the SVID
		// superseded, since the stream opened.
		if a, err = svc.recheck(ctx, a, serial); err != nil {
			return err
		}
		var entries map[string]registry.Entry
		if first {
			// From the index, now read as far as what the agent holds,
			// rather than from a cache that may be older.
			entries = s.entries.At(a, gen)
		} else {
			entries = s.entries.Of(a)
		}
		resp, err := st.Next(s.syncNow(entries))
		if err != nil {
			return err
		}
		if first && svc.stopping() {
			// A stream opened while the server drains ends before its
			// first answer: the agent must not take it for a server that
			// is back, only to lose it at once.
			return errShuttingDown
		}
		if first || resp != nil {
			if resp == nil {
				resp = &nodepb.SyncResponse{}
			}
			if err := stream.Send(resp); err != nil {
				return fmt.Errorf("%w: sending: %w", errStream, err)
			}
		}
		first = false
		// The stream ends when the SVID it was opened with expires: the
		// agent reconnects with its renewed one.
		expiry := time.NewTimer(max(leafExpiry(ctx).Sub(s.now()), 0))
		select {
		case <-ctx.Done():
			expiry.Stop()
			return ctx.Err()
		case <-svc.drain:
			expiry.Stop()
			return errShuttingDown
		case <-s.life.Closed():
			expiry.Stop()
			return errShuttingDown
		case <-expiry.C:
			return fmt.Errorf("%w: agent %s, during its entry stream", errExpired, a.ID)
		case <-changed:
			expiry.Stop()
		case <-ownChanged:
			expiry.Stop()
		}
	}
}

// recheck reads the agent's cached record again; an agent evicted or
// banned meanwhile loses its stream, and so does one whose SVID that
// opened the stream (serial) is superseded: neither its current one nor,
// until the agent uses that, the one before. The agent then reconnects
// with its current SVID: the error is not a refusal.
func (svc *service) recheck(ctx context.Context, a registry.Agent, serial string) (registry.Agent, error) {
	s := svc.s
	cur, found, err := s.agentRecord(ctx, a.ID)
	if err != nil {
		return a, nil // keep going on a store hiccup; the next wake retries
	}
	if found && !cur.Banned && serial != cur.SerialNumber && serial != cur.PreviousSerialNumber {
		// The cache may have gone back to an older read: the store decides.
		if cur, found, err = s.storedAgentRecord(ctx, a.ID); err != nil {
			return a, nil
		}
		if found && !cur.Banned && serial != cur.SerialNumber && serial != cur.PreviousSerialNumber {
			return a, fmt.Errorf("%w: agent %s, serial %s, during its entry stream; the record has %s",
				errStreamSuperseded, a.ID, serial, cur.SerialNumber)
		}
	}
	switch {
	case !found:
		return a, fmt.Errorf("%w: agent %s, during its entry stream", errEvicted, a.ID)
	case cur.Banned:
		return a, fmt.Errorf("%w: agent %s, during its entry stream", errBanned, a.ID)
	case s.now().After(cur.ExpiresAt) && !cur.ExpiresAt.IsZero():
		return a, fmt.Errorf("%w: agent %s, during its entry stream", errExpired, a.ID)
	}
	return cur, nil
}

// syncNow is what an agent that may obtain entries may hold now.
func (s *Server) syncNow(entries map[string]registry.Entry) syncstate.Now {
	now := syncstate.Now{
		TrustDomain: s.td,
		Entries:     entries,
		Bundle:      s.cfg.Authority.Bundle(),
		Tainted:     s.cfg.Authority.TaintedX509CAs(),
	}
	if s.cfg.Federation != nil {
		now.Federation, now.Federated = true, federatedFor(entries, s.cfg.Federation.FederatedBundles())
	}
	if x := s.cfg.Authority.X509Authority(); x != nil {
		now.Active = x.Certificate()
	}
	if r, ok := s.cfg.Authority.(ca.KeyTaintReporter); ok {
		now.TaintedJWTKeys, now.TaintedWITKeys = r.TaintedJWTKeyIDs(), r.TaintedWITKeyIDs()
	}
	return now
}

// federatedFor returns the bundles of all whose trust domain one of entries
// federates with: an agent holds only the foreign bundles its workloads may
// be handed, however many relationships the server has.
func federatedFor(entries map[string]registry.Entry, all []*spiffebundle.Bundle) []*spiffebundle.Bundle {
	want := make(map[spiffeid.TrustDomain]bool)
	for _, e := range entries {
		for _, td := range e.FederatesWith {
			want[td] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	out := make([]*spiffebundle.Bundle, 0, min(len(want), len(all)))
	for _, b := range all {
		if b != nil && want[b.TrustDomain()] {
			out = append(out, b)
		}
	}
	return out
}
