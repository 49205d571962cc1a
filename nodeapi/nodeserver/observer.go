package nodeserver

import (
	"errors"
	"time"

	"google.golang.org/grpc/codes"
)

// An Observer is told what a Server does, for metrics: each call agents
// make, each node attestation and each SVID signed. Set it in
// Config.Observer; without one the server does no accounting at all.
//
// The server calls the methods on the goroutines of the calls, and of the
// signing workers of a batch, concurrently, never with a lock of its own
// held. They must be safe for concurrent use, return quickly and never
// block: a slow Observer slows every agent.
type Observer interface {
	// RPC follows each call of the node protocol once it is answered.
	// method is "Attest", "RenewAgent", "SignX509SVIDs", "SignJWTSVID",
	// "SignWITSVID", "Sync", or a downstream server's "MintX509CA" or "PublishJWTKeys"; code is the status the agent got (OK for a stream the agent
	// or the server's shutdown ended cleanly, Canceled when the agent
	// left first); d is the call's duration, for Sync the life of the
	// entry stream.
	RPC(method string, code codes.Code, d time.Duration)

	// NodeAttested follows each node attestation whose attestor the
	// server has: attestor is its Type, and outcome "ok" (the agent got its
	// SVID), "refused" (the attestor refused the evidence, or the agent is
	// banned) or "error" (the attestor failed or gave an answer the server
	// cannot use, the exchange broke off or timed out, or storing the
	// record or signing failed).
	NodeAttested(attestor, outcome string)

	// Signed follows each SVID the server's CA is asked to sign: svidType
	// is "agent" (an agent SVID, at attestation or renewal), "x509",
	// "jwt" or "wit" (for an entry of an agent's), or "x509_ca" (the CA of a
	// downstream server); d is how long the CA took, and
	// err its failure or nil. Requests refused before they reach the CA
	// (an entry the agent may not have, a malformed CSR) are not signings.
	Signed(svidType string, d time.Duration, err error)
}

// Values of an Observer's labels.
const (
	svidAgent = "agent"
	svidX509  = "x509"
	svidJWT   = "jwt"
	svidWIT   = "wit"
	// svidX509CA is an intermediate CA signed for a downstream server.
	svidX509CA = "x509_ca"

	outcomeOK      = "ok"
	outcomeRefused = "refused"
	outcomeError   = "error"
)

// Stats is a snapshot of a Server's state, for metrics and health
// checks.
type Stats struct {
	// Entries is the number of registration entries the server has
	// indexed.
	Entries int
	// Agents is the number of agent records the server knows of
	// (attested and not evicted, banned ones included).
	Agents int
	// Streams is the number of open entry streams: the agents connected
	// to this server now.
	Streams int
	// HandshakesRefused counts the connections the server closed since
	// it started because their TLS handshake waited longer than
	// Config.HandshakeWait for a turn (Config.MaxHandshakes): not zero
	// when more agents connect at once than the server can handshake in
	// time, and they retry after their backoff.
	HandshakesRefused uint64
}

// Stats returns a snapshot of the server's state. It reads memory only.
func (s *Server) Stats() Stats {
	return Stats{Entries: s.idx.Len(), Agents: s.agents.Len(), Streams: int(s.streams.Load()),
		HandshakesRefused: s.refused.count()}
}

// observeStart returns the time an observed operation starts, or the zero
// time when there is no Observer to tell.
func (s *Server) observeStart() time.Time {
	if s.cfg.Observer == nil {
		return time.Time{}
	}
	return time.Now()
}

// signed tells the Observer of a signing that began at start.
func (s *Server) signed(svidType string, start time.Time, err error) {
	if o := s.cfg.Observer; o != nil {
		o.Signed(svidType, time.Since(start), err)
	}
}

// attestOutcome is the outcome an Observer is told of a node attestation
// that ended with err.
func attestOutcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, errAttestRefused), errors.Is(err, errBanned), errors.Is(err, errNoReattest):
		return outcomeRefused
	}
	return outcomeError
}
