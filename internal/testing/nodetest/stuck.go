package nodetest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// StuckStore is a [Store] whose records of nodes (agent records and join
// tokens), once Stuck is set, answer no call until the caller gives up (its
// context ends), as a store whose database a partition cut off does. Until
// then it passes every call through, and the entries always. It is no
// registry.Notifier, whatever Store is: a server given it reads the writes
// of other servers when it polls, or when a record it lacks is asked for.
type StuckStore struct {
	Store
	// Stuck makes every call about a node wait for its context to end.
	Stuck atomic.Bool

	mu   sync.Mutex
	held map[string]int // calls held, by method
}

// Held returns how many calls of method (its name: "UpdateAgent") the
// store has held so far.
func (s *StuckStore) Held(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[method]
}

func (s *StuckStore) wait(ctx context.Context, method string) error {
	if !s.Stuck.Load() {
		return nil
	}
	s.mu.Lock()
	if s.held == nil {
		s.held = map[string]int{}
	}
	s.held[method]++
	s.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

// PutAgent implements registry.AgentStore.
func (s *StuckStore) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := s.wait(ctx, "PutAgent"); err != nil {
		return registry.Agent{}, err
	}
	return s.Store.PutAgent(ctx, a)
}

// UpdateAgent implements registry.AgentStore.
func (s *StuckStore) UpdateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := s.wait(ctx, "UpdateAgent"); err != nil {
		return registry.Agent{}, err
	}
	return s.Store.UpdateAgent(ctx, a)
}

// GetAgent implements registry.AgentStore.
func (s *StuckStore) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	if err := s.wait(ctx, "GetAgent"); err != nil {
		return registry.Agent{}, err
	}
	return s.Store.GetAgent(ctx, id)
}

// ListAgents implements registry.AgentStore.
func (s *StuckStore) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	if err := s.wait(ctx, "ListAgents"); err != nil {
		return nil, err
	}
	return s.Store.ListAgents(ctx)
}

// CreateToken implements registry.TokenStore.
func (s *StuckStore) CreateToken(ctx context.Context, t registry.JoinToken) error {
	if err := s.wait(ctx, "CreateToken"); err != nil {
		return err
	}
	return s.Store.CreateToken(ctx, t)
}

// GetToken implements registry.TokenStore.
func (s *StuckStore) GetToken(ctx context.Context, id string) (registry.JoinToken, error) {
	if err := s.wait(ctx, "GetToken"); err != nil {
		return registry.JoinToken{}, err
	}
	return s.Store.GetToken(ctx, id)
}

// DeleteToken implements registry.TokenStore.
func (s *StuckStore) DeleteToken(ctx context.Context, id string) (bool, error) {
	if err := s.wait(ctx, "DeleteToken"); err != nil {
		return false, err
	}
	return s.Store.DeleteToken(ctx, id)
}

// PruneTokens implements registry.TokenStore.
func (s *StuckStore) PruneTokens(ctx context.Context, t time.Time) (int, error) {
	if err := s.wait(ctx, "PruneTokens"); err != nil {
		return 0, err
	}
	return s.Store.PruneTokens(ctx, t)
}

// DeleteAgent implements registry.AgentStore.
func (s *StuckStore) DeleteAgent(ctx context.Context, id spiffeid.ID) error {
	if err := s.wait(ctx, "DeleteAgent"); err != nil {
		return err
	}
	return s.Store.DeleteAgent(ctx, id)
}
