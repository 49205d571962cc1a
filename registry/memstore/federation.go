package memstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var _ registry.FederationStore = (*Store)(nil)

// CreateFederationRelationship implements [registry.FederationStore].
func (s *Store) CreateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (registry.FederationRelationship, error) {
	if err := ctx.Err(); err != nil {
		return registry.FederationRelationship{}, err
	}
	r, err := registry.PrepareFederationRelationship(r, s.now())
	if err != nil {
		return registry.FederationRelationship{}, err
	}
	s.nodeMu.Lock()
	if _, ok := s.relationships[r.TrustDomain]; ok {
		s.nodeMu.Unlock()
		return registry.FederationRelationship{}, registry.FederationRelationshipExists(r.TrustDomain)
	}
	if len(s.relationships) >= registry.MaxFederationRelationships {
		s.nodeMu.Unlock()
		return registry.FederationRelationship{}, registry.TooManyFederationRelationships()
	}
	s.relationships[r.TrustDomain] = r
	s.nodeMu.Unlock()
	s.signal(registry.TopicFederation)
	return r.Clone(), nil
}

// UpdateFederationRelationship implements [registry.FederationStore]: the
// relationship is looked up and replaced under one lock.
func (s *Store) UpdateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (registry.FederationRelationship, error) {
	if err := ctx.Err(); err != nil {
		return registry.FederationRelationship{}, err
	}
	r, err := registry.PrepareFederationRelationship(r, s.now())
	if err != nil {
		return registry.FederationRelationship{}, err
	}
	s.nodeMu.Lock()
	old, ok := s.relationships[r.TrustDomain]
	if !ok {
		s.nodeMu.Unlock()
		return registry.FederationRelationship{}, registry.NotFoundf("federation relationship with %q", r.TrustDomain)
	}
	r.CreatedAt = old.CreatedAt
	s.relationships[r.TrustDomain] = r
	s.nodeMu.Unlock()
	s.signal(registry.TopicFederation)
	return r.Clone(), nil
}

// GetFederationRelationship implements [registry.FederationStore].
func (s *Store) GetFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) (registry.FederationRelationship, error) {
	if err := ctx.Err(); err != nil {
		return registry.FederationRelationship{}, err
	}
	s.nodeMu.Lock()
	r, ok := s.relationships[td]
	s.nodeMu.Unlock()
	if !ok {
		return registry.FederationRelationship{}, registry.NotFoundf("federation relationship with %q", td)
	}
	return r.Clone(), nil
}

// ListFederationRelationships implements [registry.FederationStore].
func (s *Store) ListFederationRelationships(ctx context.Context) ([]registry.FederationRelationship, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.nodeMu.Lock()
	out := make([]registry.FederationRelationship, 0, len(s.relationships))
	for _, r := range s.relationships {
		out = append(out, r.Clone())
	}
	s.nodeMu.Unlock()
	slices.SortFunc(out, func(a, b registry.FederationRelationship) int {
		return cmp.Compare(a.TrustDomain.Name(), b.TrustDomain.Name())
	})
	return out, nil
}

// DeleteFederationRelationship implements [registry.FederationStore].
func (s *Store) DeleteFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.nodeMu.Lock()
	_, ok := s.relationships[td]
	delete(s.relationships, td)
	s.nodeMu.Unlock()
	if !ok {
		return registry.NotFoundf("federation relationship with %q", td)
	}
	s.signal(registry.TopicFederation)
	return nil
}
