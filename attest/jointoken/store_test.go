package jointoken_test

import (
	"context"
	"errors"

	"github.com/spiffekit/spiffekit/registry"
)

// brokenStore is a TokenStore whose backend fails: reads, deletes, or both.
type brokenStore struct {
	registry.TokenStore
	failGet, failDelete bool
}

var errBackend = errors.New("backend unreachable")

func (s brokenStore) GetToken(ctx context.Context, id string) (registry.JoinToken, error) {
	if s.failGet {
		return registry.JoinToken{}, errBackend
	}
	return s.TokenStore.GetToken(ctx, id)
}

func (s brokenStore) DeleteToken(ctx context.Context, id string) (bool, error) {
	if s.failDelete {
		return false, errBackend
	}
	return s.TokenStore.DeleteToken(ctx, id)
}
