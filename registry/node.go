package registry

import (
	"context"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// An Agent is the record an issuing server keeps of a node agent it
// attested: who it is, how it proved it, and which SVID it holds now.
// Servers sharing one database share these records, so that an agent
// evicted or banned through one server is refused by all.
type Agent struct {
	// ID is the agent's SPIFFE ID. It identifies the record.
	ID spiffeid.ID
	// AttestorType names the node attestor that admitted it ("join_token",
	// "x509pop").
	AttestorType string
	// Selectors are the node's selectors from attestation, sorted by
	// [attest.Selector.Compare]. At most [MaxSelectors].
	Selectors []attest.Selector
	// SerialNumber is the serial number, in lower-case hexadecimal, of the
	// agent SVID issued last. A call authenticated with another SVID is
	// refused, except with PreviousSerialNumber during a renewal.
	SerialNumber string
	// PreviousSerialNumber is the serial number of the SVID the agent held
	// before its last renewal; it stays valid until the agent first uses
	// the new one, so that a renewal lost in transit does not lock it out.
	PreviousSerialNumber string
	// ExpiresAt is the expiry of the agent SVID issued last.
	ExpiresAt time.Time
	// CanReattest says whether a node may attest again under the same ID
	// while this record exists (see attest.NodeResult.CanReattest); when it
	// is false, a node attesting again under ID is refused until the record
	// is deleted.
	CanReattest bool
	// Banned agents are refused, and may not attest again, until the record
	// is deleted: [AgentStore.PutAgent] never clears it.
	Banned bool
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt, UpdatedAt time.Time
}

// An AgentStore keeps the records of attested agents. Implementations are
// safe for concurrent use.
type AgentStore interface {
	// PutAgent creates or replaces the record with a.ID and returns it as
	// stored. It never lifts a ban: replacing a banned record keeps Banned
	// true whatever a says, checked and written in one atomic step, so
	// that a server that read the record before another one banned the
	// agent cannot write the ban over. Only DeleteAgent lifts it. Callers
	// check Banned in the record returned. Errors wrap [ErrInvalid].
	PutAgent(ctx context.Context, a Agent) (Agent, error)
	// UpdateAgent replaces the record with a.ID only if there is one, and
	// returns it as stored: it never creates a record, so that a server
	// writing a record it read before another server deleted it (an agent
	// evicted while it renewed) cannot bring the agent back. The check and
	// the write are one atomic step. Like PutAgent it keeps CreatedAt and
	// never lifts a ban. Errors wrap [ErrNotFound] when there is no record
	// with a.ID, or [ErrInvalid].
	UpdateAgent(ctx context.Context, a Agent) (Agent, error)
	// GetAgent returns the record with the given ID, or an error wrapping
	// [ErrNotFound].
	GetAgent(ctx context.Context, id spiffeid.ID) (Agent, error)
	// ListAgents returns every record, ordered by ID.
	ListAgents(ctx context.Context) ([]Agent, error)
	// DeleteAgent removes the record with the given ID. Errors wrap
	// [ErrNotFound].
	DeleteAgent(ctx context.Context, id spiffeid.ID) error
}

// A JoinToken is a single-use secret that admits one node agent. Only a
// hash of the secret is stored.
type JoinToken struct {
	// ID names the token; it is not secret, and the agent ID of the node
	// it admits is derived from it unless AgentID is set.
	ID string
	// SecretHash is the SHA-256 digest of the token's secret part.
	SecretHash []byte
	// AgentID, when not zero, is the SPIFFE ID given to the agent the token
	// admits, instead of one derived from ID.
	AgentID spiffeid.ID
	// ExpiresAt is when the token stops admitting anyone.
	ExpiresAt time.Time
}

// A TokenStore keeps join tokens until they are used or expire.
// Implementations are safe for concurrent use.
type TokenStore interface {
	// CreateToken stores a new token. Errors wrap [ErrInvalid] or
	// [ErrAlreadyExists].
	CreateToken(ctx context.Context, t JoinToken) error
	// GetToken returns the token with the given ID, or an error wrapping
	// [ErrNotFound].
	GetToken(ctx context.Context, id string) (JoinToken, error)
	// DeleteToken removes the token with the given ID and reports whether
	// this call removed it. Of several concurrent calls for one token, on
	// any number of servers sharing the store, exactly one reports true:
	// that is what makes a token single-use.
	DeleteToken(ctx context.Context, id string) (bool, error)
	// PruneTokens removes the tokens that expired before t and returns how
	// many.
	PruneTokens(ctx context.Context, t time.Time) (int, error)
}

// A FederatedBundle is the bundle of a foreign trust domain, kept as the
// SPIFFE bundle document (a JWK Set) it was received as.
type FederatedBundle struct {
	// TrustDomain is the foreign trust domain.
	TrustDomain spiffeid.TrustDomain
	// Document is the SPIFFE bundle document, at most [MaxBundleDocument]
	// bytes.
	Document []byte
	// UpdatedAt is set by the store.
	UpdatedAt time.Time
}

// MaxBundleDocument is the largest bundle document a BundleStore keeps.
const MaxBundleDocument = 1 << 20

// A BundleStore keeps the bundles of foreign trust domains. Implementations
// are safe for concurrent use.
type BundleStore interface {
	// PutBundle creates or replaces the bundle of b.TrustDomain. Errors wrap
	// [ErrInvalid].
	PutBundle(ctx context.Context, b FederatedBundle) (FederatedBundle, error)
	// GetBundle returns the bundle of td, or an error wrapping
	// [ErrNotFound].
	GetBundle(ctx context.Context, td spiffeid.TrustDomain) (FederatedBundle, error)
	// ListBundles returns every bundle, ordered by trust domain name.
	ListBundles(ctx context.Context) ([]FederatedBundle, error)
	// DeleteBundle removes the bundle of td. Errors wrap [ErrNotFound].
	DeleteBundle(ctx context.Context, td spiffeid.TrustDomain) error
}

// A ServerBundle is the part of the trust domain's own bundle that one
// issuing server contributes: the authorities of its own CA. Servers that
// share a database serve the union of every live server's contribution, so
// that an SVID signed by any of them verifies everywhere.
type ServerBundle struct {
	// ServerID names the server; each server picks a stable one.
	ServerID string
	// Document is the server's bundle as a SPIFFE bundle document, at most
	// [MaxBundleDocument] bytes.
	Document []byte
	// ExpiresAt is when the contribution lapses if the server does not
	// renew it: after the last of its authorities has expired.
	ExpiresAt time.Time
	// Authorities describe the authorities of the server's CA, at most
	// [MaxServerAuthorities], with their state and taint, so that the other
	// servers can list them and hand out their taints. Nil when the server
	// publishes none.
	Authorities []ServerAuthority
	// UpdatedAt is set by the store.
	UpdatedAt time.Time
}

// A ServerBundleStore keeps the contributions of the servers of one trust
// domain to its bundle, and the operators' marks on the authorities they
// describe (see [AuthorityMark]). Implementations are safe for concurrent
// use; a [Notifier] tells of both kinds of write under [TopicAuthorities].
type ServerBundleStore interface {
	// PutServerBundle creates or replaces the contribution of b.ServerID.
	// Errors wrap [ErrInvalid].
	PutServerBundle(ctx context.Context, b ServerBundle) error
	// ListServerBundles returns every contribution that has not expired at
	// now, ordered by server ID.
	ListServerBundles(ctx context.Context, now time.Time) ([]ServerBundle, error)
	// PutAuthorityMark creates the mark of (m.Kind, m.AuthorityID), or
	// updates it, and returns it as stored. A revocation is never undone:
	// a mark stored revoked stays revoked whatever m.Revoked says. Errors
	// wrap [ErrInvalid].
	PutAuthorityMark(ctx context.Context, m AuthorityMark) (AuthorityMark, error)
	// ListAuthorityMarks returns every mark that has not expired at now,
	// ordered by kind, then authority ID.
	ListAuthorityMarks(ctx context.Context, now time.Time) ([]AuthorityMark, error)
}
