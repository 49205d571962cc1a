package jointoken

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the join token node attestor.
const Type = "join_token"

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// Store holds the tokens. Required.
	Store registry.TokenStore

	// Now gives the current time, against which token expiry is checked.
	// Nil means time.Now.
	Now func() time.Time
}

// Server is the server side of join token attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type Server struct {
	store registry.TokenStore
	now   func() time.Time
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits nodes presenting a token from
// c.Store. It fails if c.Store is nil.
func NewServer(c ServerConfig) (*Server, error) {
	if c.Store == nil {
		return nil, errors.New("jointoken: no token store")
	}
	s := &Server{store: c.Store, now: c.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Type returns "join_token".
func (s *Server) Type() string { return Type }

// Attest admits the node whose payload is a valid, unexpired, unused token,
// and consumes the token. It never uses challenge.
//
// The agent ID is the token's alias if it has one, or
// spiffe://<td>/spiffekit/agent/join_token/<token ID>. The node has one
// selector, join_token:id:<token ID>, and cannot re-attest.
//
// Errors wrapping [attest.ErrNodeRejected]: the payload is not a token, no
// such token exists (never did, was used, or was pruned), the secret is wrong
// (the token stays usable), the token expired (it is deleted), its alias is
// not an agent ID of td (see [registry.IsAgentID]), or another attestation consumed it first. Other errors come
// from the store and leave the token as it was, unless it was expired.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, _ attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("jointoken: no trust domain")
	}
	id, secret, err := parse(string(payload))
	if err != nil {
		return attest.NodeResult{}, rejectf("%v", err)
	}
	rec, err := s.store.GetToken(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return attest.NodeResult{}, rejectf("no token %s: unknown, used or pruned", id)
	}
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("jointoken: reading token %s: %w", id, err)
	}
	hash := sha256.Sum256(secret)
	// Constant time, so the response time says nothing about how much of a
	// guessed secret's hash matched. A mismatch does not delete the token:
	// whoever knows only the ID must not be able to burn it.
	if subtle.ConstantTimeCompare(hash[:], rec.SecretHash) != 1 {
		return attest.NodeResult{}, rejectf("wrong secret for token %s", id)
	}
	if !s.now().Before(rec.ExpiresAt) {
		if _, err := s.store.DeleteToken(ctx, id); err != nil {
			return attest.NodeResult{}, fmt.Errorf("jointoken: deleting expired token %s: %w", id, err)
		}
		return attest.NodeResult{}, rejectf("token %s expired at %s", id, rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	agentID := rec.AgentID
	if agentID.IsZero() {
		if agentID, err = spiffeid.FromSegments(td, "spiffekit", "agent", "join_token", id); err != nil {
			return attest.NodeResult{}, fmt.Errorf("jointoken: agent ID for token %s: %w", id, err)
		}
	} else if !agentID.MemberOf(td) || !registry.IsAgentID(agentID) {
		// A record written before agent IDs had to be in the agents'
		// namespace may name a workload's ID: the agent's SVID would
		// carry it.
		return attest.NodeResult{}, rejectf("token %s names agent ID %q, which is not an agent ID of trust domain %q", id, agentID, td)
	}
	// Single use: of all the attestations presenting this token, on any
	// server sharing the store, only the one whose delete succeeds admits
	// the node.
	deleted, err := s.store.DeleteToken(ctx, id)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("jointoken: consuming token %s: %w", id, err)
	}
	if !deleted {
		return attest.NodeResult{}, rejectf("token %s was already used", id)
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   attest.NewSelectors(attest.Selector{Type: Type, Value: "id:" + id}),
		CanReattest: false,
	}, nil
}

// rejectf returns an error wrapping attest.ErrNodeRejected. Callers must not
// pass the secret or the raw payload.
func rejectf(format string, args ...any) error {
	return &rejectError{msg: "jointoken: " + fmt.Sprintf(format, args...)}
}

type rejectError struct{ msg string }

func (e *rejectError) Error() string        { return e.msg }
func (e *rejectError) Is(target error) bool { return target == attest.ErrNodeRejected }
