package mint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// JoinTokens makes join tokens for the admin API. It implements
// adminserver.TokenIssuer.
type JoinTokens struct {
	// Store keeps the tokens.
	Store registry.TokenStore
	// Entries keeps the node alias entries.
	Entries registry.Store
	// ServerID is the server's SPIFFE ID, parent of node aliases.
	ServerID spiffeid.ID
	// Now is the clock of the tokens' expiry; nil means time.Now.
	Now func() time.Time
}

var _ adminserver.TokenIssuer = JoinTokens{}

// GenerateToken makes a token, and for a non-zero alias the node alias
// entry that gives the admitted agent that name, as SPIRE does for
// `token generate -spiffeID`: the entry's SPIFFE ID is alias, its parent
// the server's ID, its selector the one the token's agent is attested
// with (join_token:id:<token ID>). The agent's own ID stays in the
// agents' namespace. If the entry cannot be stored, the token is deleted.
func (t JoinTokens) GenerateToken(ctx context.Context, ttl time.Duration, alias spiffeid.ID) (string, time.Time, error) {
	if ttl < jointoken.MinTTL || ttl > jointoken.MaxTTL {
		return "", time.Time{}, fmt.Errorf("%w: server: token TTL must be between %s and %s", registry.ErrInvalid, jointoken.MinTTL, jointoken.MaxTTL)
	}
	if !alias.IsZero() && (!alias.MemberOf(t.ServerID.TrustDomain()) || alias.Path() == "" || registry.Reserved(alias)) {
		return "", time.Time{}, fmt.Errorf("%w: server: token SPIFFE ID %q must be a workload ID of trust domain %q outside %s/",
			registry.ErrInvalid, alias, t.ServerID.TrustDomain(), registry.ReservedPath)
	}
	tok, rec, err := jointoken.Generate(ctx, t.Store, jointoken.Params{TTL: ttl, Now: t.Now})
	if err != nil {
		if errors.Is(err, registry.ErrInvalid) {
			return "", time.Time{}, err
		}
		return "", time.Time{}, fmt.Errorf("server: %w", err)
	}
	if !alias.IsZero() {
		_, err := t.Entries.Create(ctx, registry.Entry{
			SPIFFEID:  alias,
			ParentID:  t.ServerID,
			Selectors: []attest.Selector{{Type: jointoken.Type, Value: "id:" + rec.ID}},
		})
		if err != nil {
			_, derr := t.Store.DeleteToken(context.WithoutCancel(ctx), rec.ID)
			return "", time.Time{}, fmt.Errorf("server: node alias %q of token %s: %w", alias, rec.ID, errors.Join(err, derr))
		}
	}
	return tok, rec.ExpiresAt, nil
}
