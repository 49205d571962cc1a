package jointoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Lifetimes of generated tokens.
const (
	// DefaultTTL is the lifetime of a token when [Params.TTL] is zero.
	DefaultTTL = 10 * time.Minute
	// MinTTL is the shortest lifetime [Generate] accepts: a token that
	// expires before a node could present it admits nobody.
	MinTTL = time.Second
	// MaxTTL is the longest lifetime [Generate] accepts. A join token is a
	// bearer secret; one that lives for days is one that leaks.
	MaxTTL = 24 * time.Hour
)

// Sizes of the parts of a token.
const (
	// secretSize is the size of a token's secret in bytes.
	secretSize = 32
	// idSize is the number of random bytes in a generated ID.
	idSize = 16
	// secretEncodedLength is the length of the secret in unpadded base64url.
	secretEncodedLength = (secretSize*8 + 5) / 6
	// maxTokenLength bounds what parse reads: an ID, a dot and the
	// base64url encoding of the secret.
	maxTokenLength = registry.MaxTokenIDLen + 1 + secretEncodedLength
)

// Params are the inputs of [Generate].
type Params struct {
	// TTL is how long the token admits a node. Zero means [DefaultTTL];
	// otherwise it must be between [MinTTL] and [MaxTTL].
	TTL time.Duration

	// AgentID, when not zero, is the SPIFFE ID the admitted agent receives
	// instead of the one derived from the token ID. It must be an agent ID
	// (its path under /spiffekit/agent/, see [registry.IsAgentID]), and it
	// must be in the trust domain of the server that admits the node, or the
	// node is rejected. To give a node's agent a name of your own, leave
	// AgentID zero and register that name as a node alias entry (parented
	// by the server's ID) with the selector join_token:id:<token ID>, as the
	// server's admin API does for a token requested with a SPIFFE ID.
	// While an agent holds AgentID (its record exists), a server refuses a
	// node presenting a token that names it: a join token agent cannot
	// attest again (see [attest.NodeResult.CanReattest]).
	AgentID spiffeid.ID

	// Now gives the current time. Nil means time.Now.
	Now func() time.Time
}

// Generate creates a join token, stores its record in store and returns the
// token to give to the node, together with the record as stored (holding
// only the hash of the secret). The returned token is the only copy of the
// secret: print it or pass it on, never log it.
//
// Errors from store are wrapped; an invalid p gives an error that names the
// field and wraps [registry.ErrInvalid].
func Generate(ctx context.Context, store registry.TokenStore, p Params) (token string, rec registry.JoinToken, err error) {
	if store == nil {
		return "", registry.JoinToken{}, errors.New("jointoken: no token store")
	}
	ttl := p.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < 0:
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: TTL %v is negative: %w", ttl, registry.ErrInvalid)
	case ttl < MinTTL:
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: TTL %v is below the minimum of %v: %w", ttl, MinTTL, registry.ErrInvalid)
	case ttl > MaxTTL:
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: TTL %v exceeds the maximum of %v: %w", ttl, MaxTTL, registry.ErrInvalid)
	}
	switch {
	case p.AgentID.IsZero():
	case p.AgentID.Path() == "":
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: agent ID %q has no path: %w", p.AgentID, registry.ErrInvalid)
	case !registry.IsAgentID(p.AgentID):
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: agent ID %q is not under %s/, the agents' namespace: %w", p.AgentID, registry.AgentPath, registry.ErrInvalid)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}

	var id [idSize]byte
	var secret [secretSize]byte
	rand.Read(id[:]) // crypto/rand.Read never fails
	rand.Read(secret[:])
	hash := sha256.Sum256(secret[:])
	rec = registry.JoinToken{
		ID:         hex.EncodeToString(id[:]),
		SecretHash: hash[:],
		AgentID:    p.AgentID,
		ExpiresAt:  now().Add(ttl),
	}
	if err := store.CreateToken(ctx, rec); err != nil {
		return "", registry.JoinToken{}, fmt.Errorf("jointoken: storing token %s: %w", rec.ID, err)
	}
	return rec.ID + "." + base64.RawURLEncoding.EncodeToString(secret[:]), rec, nil
}

// parse splits a token into its ID and decoded secret. Its errors never
// contain the token: a malformed token may still be mostly a real secret.
func parse(token string) (id string, secret []byte, err error) {
	if len(token) > maxTokenLength {
		return "", nil, fmt.Errorf("token is longer than %d bytes", maxTokenLength)
	}
	id, enc, ok := strings.Cut(token, ".")
	if !ok {
		return "", nil, errors.New("token has no '.' between ID and secret")
	}
	// A token ID is 1 to registry.MaxTokenIDLen characters of
	// [A-Za-z0-9_-]: also a valid SPIFFE ID path segment.
	if !registry.ValidTokenID(id) {
		return "", nil, errors.New("token ID is malformed")
	}
	// Strict: no padding, no trailing bits, and (with the length check,
	// since the decoder skips line breaks) nothing but the alphabet, so one
	// secret has exactly one spelling.
	if len(enc) != secretEncodedLength {
		return "", nil, errors.New("token secret is malformed")
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(secret) != secretSize {
		return "", nil, errors.New("token secret is malformed")
	}
	return id, secret, nil
}
