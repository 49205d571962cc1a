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

// pusher is told about writes, so that they reach agents at once rather
// than at the next poll.
type pusher interface {
	Sync(ctx context.Context) error
	Refresh(ctx context.Context) error
}

// pushingStore is the registry as the admin API writes it: every
// successful write is pushed to the agents it concerns.
type pushingStore struct {
	batchStore
	push pusher
}

// batchStore is a registry that creates batches in one write, as
// registry/sqlstore does.
type batchStore interface {
	registry.Store
	registry.BatchCreator
}

func (p pushingStore) after(ctx context.Context) {
	_ = p.push.Sync(context.WithoutCancel(ctx)) // a failed sync is retried by the poll
}

func (p pushingStore) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	e, err := p.batchStore.Create(ctx, e)
	if err == nil {
		p.after(ctx)
	}
	return e, err
}

func (p pushingStore) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	e, err := p.batchStore.Update(ctx, e)
	if err == nil {
		p.after(ctx)
	}
	return e, err
}

func (p pushingStore) Delete(ctx context.Context, id string, revision int64) (registry.Entry, error) {
	e, err := p.batchStore.Delete(ctx, id, revision)
	if err == nil {
		p.after(ctx)
	}
	return e, err
}

// pushingAgents makes an eviction or ban through the admin API take effect
// at once on this server (other servers see it at their next refresh).
type pushingAgents struct {
	registry.AgentStore
	push pusher
}

func (p pushingAgents) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	a, err := p.AgentStore.PutAgent(ctx, a)
	if err == nil {
		_ = p.push.Refresh(context.WithoutCancel(ctx))
	}
	return a, err
}

func (p pushingAgents) DeleteAgent(ctx context.Context, id spiffeid.ID) error {
	err := p.AgentStore.DeleteAgent(ctx, id)
	if err == nil {
		_ = p.push.Refresh(context.WithoutCancel(ctx))
	}
	return err
}

// pushingBundles makes a federated bundle set through the admin API reach
// agents at once.
type pushingBundles struct {
	registry.BundleStore
	push interface{ refresh(context.Context) error }
}

func (p pushingBundles) PutBundle(ctx context.Context, b registry.FederatedBundle) (registry.FederatedBundle, error) {
	b, err := p.BundleStore.PutBundle(ctx, b)
	if err == nil {
		_ = p.push.refresh(context.WithoutCancel(ctx))
	}
	return b, err
}

func (p pushingBundles) DeleteBundle(ctx context.Context, td spiffeid.TrustDomain) error {
	err := p.BundleStore.DeleteBundle(ctx, td)
	if err == nil {
		_ = p.push.refresh(context.WithoutCancel(ctx))
	}
	return err
}

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

// CreateBatch creates the entries in one write, then pushes once.
func (p pushingStore) CreateBatch(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	res, err := p.batchStore.CreateBatch(ctx, entries)
	if err != nil {
		return nil, err
	}
	p.after(ctx)
	return res, nil
}

var _ registry.BatchCreator = pushingStore{}
