package endpoint

import (
	"context"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Handler decides what each caller of the Workload API gets: its SVIDs and
// the bundles it trusts. The server asks it once per RPC and is told of
// changes through the [Subscription], so it never polls.
//
// A Handler must be safe for concurrent use. Its errors are mapped to gRPC
// status codes by the server: an error wrapping [ErrNoIdentity] becomes
// PermissionDenied, [ErrUnavailable] Unavailable, [ErrInvalidRequest]
// InvalidArgument (with the error's message), a context error its own code,
// and anything else Internal, with the details logged and not sent.
type Handler interface {
	// Subscribe returns the caller's view and a way to learn of changes.
	// It returns an error wrapping ErrNoIdentity when the caller has no
	// identity at all. ctx bounds the call only; the subscription lives
	// until its Close.
	Subscribe(ctx context.Context, caller Caller) (Subscription, error)

	// FetchJWTSVIDs mints JWT-SVIDs for the caller: one per identity it
	// holds, or only params.ID when that is not zero. It returns an error
	// wrapping ErrNoIdentity when the caller holds no (such) identity.
	// params.Audience has already been checked: it holds 1 to
	// MaxAudiences non-empty values.
	FetchJWTSVIDs(ctx context.Context, caller Caller, params JWTSVIDParams) ([]JWTSVID, error)
}

// A WITHandler is a Handler that mints WIT-SVIDs on demand, for the
// callers that ask for them, rather than keeping them in every Snapshot.
// When Config.WIT is set and the Handler is a WITHandler, FetchWITSVID
// watches the Subscription SubscribeWIT returns, whose Snapshots carry
// the caller's WIT-SVIDs; every other method uses Subscribe.
type WITHandler interface {
	Handler

	// SubscribeWIT is Subscribe for FetchWITSVID: the caller's view with
	// its WIT-SVIDs (Snapshot.WITSVIDs), kept fresh for as long as the
	// subscription lives. It returns an error wrapping ErrUnimplemented
	// when WIT-SVIDs cannot be had at all, and the errors of Subscribe
	// otherwise.
	SubscribeWIT(ctx context.Context, caller Caller) (Subscription, error)
}

// A Subscription is one caller's live view, held by one RPC. The server
// calls its methods from a single goroutine.
type Subscription interface {
	// Snapshot returns the caller's current view, or nil when the caller no
	// longer has an identity. It must not block.
	Snapshot() *Snapshot

	// Changed returns a channel that becomes ready when the view may have
	// changed since the last call to Snapshot. Spurious wake-ups are
	// allowed: the server compares what it would send with what it sent and
	// stays silent when nothing changed.
	Changed() <-chan struct{}

	// Close releases the subscription. The server calls it exactly once.
	Close()
}

// JWTSVIDParams is what a caller asked FetchJWTSVID for.
type JWTSVIDParams struct {
	// Audience is the list of values for the "aud" claim: at least one,
	// none empty.
	Audience []string
	// ID, when not zero, is the one identity the caller asked for.
	ID spiffeid.ID
}

// JWTSVID is a minted JWT-SVID as the Workload API returns it.
type JWTSVID struct {
	// ID is the SPIFFE ID in the token's "sub" claim.
	ID spiffeid.ID
	// Token is the JWS compact serialization.
	Token string
	// Hint is the optional operator-chosen label (WAPI rule 8).
	Hint string
}

// WITSVID is a WIT-SVID with its private key, as the Workload API returns it
// (WIT rule 17).
type WITSVID struct {
	// ID is the SPIFFE ID in the token's "sub" claim.
	ID spiffeid.ID
	// Token is the WIT-SVID as a JWS compact serialization.
	Token string
	// Key is the private key bound by the token's "cnf" claim, as a JWK
	// JSON document.
	Key string
	// Hint is the optional operator-chosen label (WAPI rule 8).
	Hint string
}
