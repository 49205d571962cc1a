package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// tokenIssuer makes join tokens for the admin API.
type tokenIssuer struct {
	store    registry.TokenStore
	entries  registry.Store
	serverID spiffeid.ID // the server's SPIFFE ID, parent of node aliases
	now      func() time.Time
}

// GenerateToken makes a token, and for a non-zero alias the node alias
// entry that gives the admitted agent that name, as SPIRE does for
// `token generate -spiffeID`: the entry's SPIFFE ID is alias, its parent
// the server's ID, its selector the one the token's agent is attested
// with (join_token:id:<token ID>). The agent's own ID stays in the
// agents' namespace. If the entry cannot be stored, the token is deleted.
func (t tokenIssuer) GenerateToken(ctx context.Context, ttl time.Duration, alias spiffeid.ID) (string, time.Time, error) {
	if ttl < jointoken.MinTTL || ttl > jointoken.MaxTTL {
		return "", time.Time{}, fmt.Errorf("%w: server: token TTL must be between %s and %s", registry.ErrInvalid, jointoken.MinTTL, jointoken.MaxTTL)
	}
	if !alias.IsZero() && (!alias.MemberOf(t.serverID.TrustDomain()) || alias.Path() == "" || registry.Reserved(alias)) {
		return "", time.Time{}, fmt.Errorf("%w: server: token SPIFFE ID %q must be a workload ID of trust domain %q outside %s/",
			registry.ErrInvalid, alias, t.serverID.TrustDomain(), registry.ReservedPath)
	}
	tok, rec, err := jointoken.Generate(ctx, t.store, jointoken.Params{TTL: ttl, Now: t.now})
	if err != nil {
		if errors.Is(err, registry.ErrInvalid) {
			return "", time.Time{}, err
		}
		return "", time.Time{}, fmt.Errorf("server: %w", err)
	}
	if !alias.IsZero() {
		_, err := t.entries.Create(ctx, registry.Entry{
			SPIFFEID:  alias,
			ParentID:  t.serverID,
			Selectors: []attest.Selector{{Type: jointoken.Type, Value: "id:" + rec.ID}},
		})
		if err != nil {
			_, derr := t.store.DeleteToken(context.WithoutCancel(ctx), rec.ID)
			return "", time.Time{}, fmt.Errorf("server: node alias %q of token %s: %w", alias, rec.ID, errors.Join(err, derr))
		}
	}
	return tok, rec.ExpiresAt, nil
}
