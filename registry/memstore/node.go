package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	_ registry.AgentStore        = (*Store)(nil)
	_ registry.TokenStore        = (*Store)(nil)
	_ registry.BundleStore       = (*Store)(nil)
	_ registry.ServerBundleStore = (*Store)(nil)
)

// PutAgent implements [registry.AgentStore]. Replacing a record keeps its
// CreatedAt, and its ban.
func (s *Store) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := ctx.Err(); err != nil {
		return registry.Agent{}, err
	}
	a, err := registry.PrepareAgent(a, s.now())
	if err != nil {
		return registry.Agent{}, err
	}
	s.nodeMu.Lock()
	if old, ok := s.agents[a.ID]; ok {
		a.CreatedAt = old.CreatedAt
		a.Banned = a.Banned || old.Banned
	}
	s.agents[a.ID] = a
	s.nodeMu.Unlock()
	s.signal(registry.TopicAgents)
	return a.Clone(), nil
}

// UpdateAgent implements [registry.AgentStore]: the record is looked up and
// replaced under one lock.
func (s *Store) UpdateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if err := ctx.Err(); err != nil {
		return registry.Agent{}, err
	}
	a, err := registry.PrepareAgent(a, s.now())
	if err != nil {
		return registry.Agent{}, err
	}
	s.nodeMu.Lock()
	old, ok := s.agents[a.ID]
	if !ok {
		s.nodeMu.Unlock()
		return registry.Agent{}, registry.NotFoundf("agent %q", a.ID)
	}
	a.CreatedAt = old.CreatedAt
	a.Banned = a.Banned || old.Banned
	s.agents[a.ID] = a
	s.nodeMu.Unlock()
	s.signal(registry.TopicAgents)
	return a.Clone(), nil
}

// GetAgent implements [registry.AgentStore].
func (s *Store) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	if err := ctx.Err(); err != nil {
		return registry.Agent{}, err
	}
	s.nodeMu.Lock()
	a, ok := s.agents[id]
	s.nodeMu.Unlock()
	if !ok {
		return registry.Agent{}, registry.NotFoundf("agent %q", id)
	}
	return a.Clone(), nil
}

// ListAgents implements [registry.AgentStore].
func (s *Store) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.nodeMu.Lock()
	out := make([]registry.Agent, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, a.Clone())
	}
	s.nodeMu.Unlock()
	slices.SortFunc(out, func(a, b registry.Agent) int { return cmp.Compare(a.ID.String(), b.ID.String()) })
	return out, nil
}

// DeleteAgent implements [registry.AgentStore].
func (s *Store) DeleteAgent(ctx context.Context, id spiffeid.ID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.nodeMu.Lock()
	_, ok := s.agents[id]
	delete(s.agents, id)
	s.nodeMu.Unlock()
	if !ok {
		return registry.NotFoundf("agent %q", id)
	}
	s.signal(registry.TopicAgents)
	return nil
}

// CreateToken implements [registry.TokenStore].
func (s *Store) CreateToken(ctx context.Context, t registry.JoinToken) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := registry.PrepareToken(t)
	if err != nil {
		return err
	}
	s.nodeMu.Lock()
	defer s.nodeMu.Unlock()
	if _, dup := s.tokens[t.ID]; dup {
		return fmt.Errorf("%w: join token %q", registry.ErrAlreadyExists, t.ID)
	}
	s.tokens[t.ID] = t
	return nil
}

// GetToken implements [registry.TokenStore].
func (s *Store) GetToken(ctx context.Context, id string) (registry.JoinToken, error) {
	if err := ctx.Err(); err != nil {
		return registry.JoinToken{}, err
	}
	s.nodeMu.Lock()
	t, ok := s.tokens[id]
	s.nodeMu.Unlock()
	if !ok {
		return registry.JoinToken{}, tokenNotFound(id)
	}
	return t.Clone(), nil
}

// DeleteToken implements [registry.TokenStore]: the check and the removal
// happen under one lock, so exactly one of concurrent calls reports true.
func (s *Store) DeleteToken(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.nodeMu.Lock()
	defer s.nodeMu.Unlock()
	_, ok := s.tokens[id]
	delete(s.tokens, id)
	return ok, nil
}

// PruneTokens implements [registry.TokenStore].
func (s *Store) PruneTokens(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.nodeMu.Lock()
	defer s.nodeMu.Unlock()
	n := 0
	for id, tok := range s.tokens {
		if tok.ExpiresAt.Before(t) {
			delete(s.tokens, id)
			n++
		}
	}
	return n, nil
}

// tokenNotFound names the token only if its ID is well formed, so that
// arbitrary caller input never reaches an error message.
func tokenNotFound(id string) error {
	if !registry.ValidTokenID(id) {
		return registry.NotFoundf("join token of a malformed ID")
	}
	return registry.NotFoundf("join token %q", id)
}

// PutBundle implements [registry.BundleStore].
func (s *Store) PutBundle(ctx context.Context, b registry.FederatedBundle) (registry.FederatedBundle, error) {
	if err := ctx.Err(); err != nil {
		return registry.FederatedBundle{}, err
	}
	b, err := registry.PrepareBundle(b, s.now())
	if err != nil {
		return registry.FederatedBundle{}, err
	}
	s.nodeMu.Lock()
	s.bundles[b.TrustDomain] = b
	s.nodeMu.Unlock()
	s.signal(registry.TopicBundles)
	return b.Clone(), nil
}

// GetBundle implements [registry.BundleStore].
func (s *Store) GetBundle(ctx context.Context, td spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	if err := ctx.Err(); err != nil {
		return registry.FederatedBundle{}, err
	}
	s.nodeMu.Lock()
	b, ok := s.bundles[td]
	s.nodeMu.Unlock()
	if !ok {
		return registry.FederatedBundle{}, registry.NotFoundf("bundle of %q", td)
	}
	return b.Clone(), nil
}

// ListBundles implements [registry.BundleStore].
func (s *Store) ListBundles(ctx context.Context) ([]registry.FederatedBundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.nodeMu.Lock()
	out := make([]registry.FederatedBundle, 0, len(s.bundles))
	for _, b := range s.bundles {
		out = append(out, b.Clone())
	}
	s.nodeMu.Unlock()
	slices.SortFunc(out, func(a, b registry.FederatedBundle) int {
		return cmp.Compare(a.TrustDomain.Name(), b.TrustDomain.Name())
	})
	return out, nil
}

// DeleteBundle implements [registry.BundleStore].
func (s *Store) DeleteBundle(ctx context.Context, td spiffeid.TrustDomain) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.nodeMu.Lock()
	_, ok := s.bundles[td]
	delete(s.bundles, td)
	s.nodeMu.Unlock()
	if !ok {
		return registry.NotFoundf("bundle of %q", td)
	}
	s.signal(registry.TopicBundles)
	return nil
}

// PutServerBundle implements [registry.ServerBundleStore].
func (s *Store) PutServerBundle(ctx context.Context, b registry.ServerBundle) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := registry.PrepareServerBundle(b, s.now())
	if err != nil {
		return err
	}
	s.nodeMu.Lock()
	s.serverBundles[b.ServerID] = b
	s.nodeMu.Unlock()
	s.signal(registry.TopicAuthorities)
	return nil
}

// ListServerBundles implements [registry.ServerBundleStore]. Expired
// contributions are kept, not removed, as callers may pass different times;
// there is one per server ID ever stored.
func (s *Store) ListServerBundles(ctx context.Context, now time.Time) ([]registry.ServerBundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.nodeMu.Lock()
	var out []registry.ServerBundle
	for _, b := range s.serverBundles {
		if b.ExpiresAt.After(now) {
			out = append(out, b.Clone())
		}
	}
	s.nodeMu.Unlock()
	slices.SortFunc(out, func(a, b registry.ServerBundle) int { return cmp.Compare(a.ServerID, b.ServerID) })
	return out, nil
}

// markKey identifies an authority mark.
type markKey struct {
	kind registry.AuthorityKind
	id   string
}

// PutAuthorityMark implements [registry.ServerBundleStore].
func (s *Store) PutAuthorityMark(ctx context.Context, m registry.AuthorityMark) (registry.AuthorityMark, error) {
	if err := ctx.Err(); err != nil {
		return registry.AuthorityMark{}, err
	}
	m, err := registry.PrepareAuthorityMark(m, s.now())
	if err != nil {
		return registry.AuthorityMark{}, err
	}
	k := markKey{m.Kind, m.AuthorityID}
	s.nodeMu.Lock()
	m.Revoked = m.Revoked || s.marks[k].Revoked
	s.marks[k] = m
	s.nodeMu.Unlock()
	s.signal(registry.TopicAuthorities)
	return m, nil
}

// ListAuthorityMarks implements [registry.ServerBundleStore]. Expired
// marks are kept, as for server bundles; there is one per authority ever
// marked.
func (s *Store) ListAuthorityMarks(ctx context.Context, now time.Time) ([]registry.AuthorityMark, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.nodeMu.Lock()
	var out []registry.AuthorityMark
	for _, m := range s.marks {
		if m.ExpiresAt.After(now) {
			out = append(out, m)
		}
	}
	s.nodeMu.Unlock()
	slices.SortFunc(out, func(a, b registry.AuthorityMark) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.AuthorityID, b.AuthorityID))
	})
	return out, nil
}
