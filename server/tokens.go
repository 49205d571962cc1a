package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// tokenIssuer makes join tokens for the admin API.
type tokenIssuer struct {
	store registry.TokenStore
}

func (t tokenIssuer) GenerateToken(ctx context.Context, ttl time.Duration, agentID spiffeid.ID) (string, time.Time, error) {
	if ttl < 0 || ttl > jointoken.MaxTTL {
		return "", time.Time{}, fmt.Errorf("%w: server: token TTL must be between 0 and %s", registry.ErrInvalid, jointoken.MaxTTL)
	}
	tok, rec, err := jointoken.Generate(ctx, t.store, jointoken.Params{TTL: ttl, AgentID: agentID})
	if err != nil {
		if errors.Is(err, registry.ErrInvalid) {
			return "", time.Time{}, err
		}
		return "", time.Time{}, fmt.Errorf("server: %w", err)
	}
	return tok, rec.ExpiresAt, nil
}
