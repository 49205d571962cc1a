package attest

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// ErrNodeRejected reports that a node failed attestation: its evidence is
// invalid, expired, already used, or does not chain to what the server
// trusts. Servers answer such a node with PermissionDenied and issue
// nothing. Node attestors wrap it; test with [errors.Is].
var ErrNodeRejected = errors.New("attest: node rejected")

// RejectNode returns an error that reports why a node failed attestation:
// its message is format applied to args, it wraps [ErrNodeRejected] (so
// errors.Is finds it) and cause, which may be nil. For node attestors.
func RejectNode(cause error, format string, args ...any) error {
	return &nodeRejection{msg: fmt.Sprintf(format, args...), cause: cause}
}

type nodeRejection struct {
	msg   string
	cause error
}

func (e *nodeRejection) Error() string        { return e.msg }
func (e *nodeRejection) Unwrap() error        { return e.cause }
func (e *nodeRejection) Is(target error) bool { return target == ErrNodeRejected }

// MaxNodePayload is the largest payload or challenge response, in bytes, a
// node attestation exchange carries. Servers reject larger messages before
// they reach a NodeAttestor.
const MaxNodePayload = 64 << 10

// A NodeAttestor is the server side of node attestation: it checks the
// evidence an agent presents and, if it holds, says which agent the node is.
//
// An exchange starts with the agent's payload. The attestor may then send
// challenges through challenge, which returns the agent's answer, as many
// times as its protocol needs (x509pop: once; join_token: never).
//
// Implementations are safe for concurrent use.
type NodeAttestor interface {
	// Type names the attestor, as agents name it in their first message:
	// "join_token", "x509pop".
	Type() string

	// Attest verifies payload, using challenge for any proof of
	// possession, and returns the node's identity. An error wrapping
	// [ErrNodeRejected] means the evidence does not hold; any other error
	// means the attestor could not decide (a store was unreachable).
	Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge Challenger) (NodeResult, error)
}

// A Challenger sends a challenge to the agent of a node attestation
// exchange and returns its answer.
type Challenger func(ctx context.Context, challenge []byte) (response []byte, err error)

// NodeResult is what node attestation proved about a node.
type NodeResult struct {
	// AgentID is the SPIFFE ID the node's agent receives. It is in the
	// trust domain given to [NodeAttestor.Attest].
	AgentID spiffeid.ID

	// Selectors describe the node; registration entries parented by the
	// server ("node alias" entries) match them to group nodes.
	Selectors Selectors

	// CanReattest says whether a node may attest again under AgentID while
	// the agent's record exists (x509pop: yes, with the same certificate;
	// join_token: no, a token admits one node once, trust on first use).
	// A server refuses a node that attests again under an agent ID in use
	// unless both the record's attestor and this attestation allow it:
	// otherwise a second proof for the ID (another token naming it) would
	// take over the identity, and the entries, of the node that holds it.
	// An agent renews its SVID with the SVID itself in either case; an
	// eviction (deleting the record) frees the ID.
	CanReattest bool
}

// A NodeAttestorClient is the agent side of node attestation: it produces
// the evidence for its server-side twin and answers its challenges.
//
// Implementations are safe for concurrent use.
type NodeAttestorClient interface {
	// Type names the attestor; it equals the server side's Type.
	Type() string

	// Payload returns the first message of the exchange.
	Payload(ctx context.Context) ([]byte, error)

	// Respond answers one challenge from the server.
	Respond(ctx context.Context, challenge []byte) ([]byte, error)
}
