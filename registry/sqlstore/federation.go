package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var _ registry.FederationStore = (*Store)(nil)

// CreateFederationRelationship implements [registry.FederationStore] with
// one insert, which checks the count of relationships and the trust domain
// in the same statement.
func (s *Store) CreateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (registry.FederationRelationship, error) {
	r, err := registry.PrepareFederationRelationship(r, s.now())
	if err != nil {
		return registry.FederationRelationship{}, err
	}
	// On MySQL, a SELECT with a WHERE needs a FROM, and an update that
	// changes nothing affects no row.
	from, conflict := "", `ON CONFLICT (trust_domain) DO NOTHING`
	if s.dialect.mysql {
		from, conflict = "FROM DUAL ", `ON DUPLICATE KEY UPDATE trust_domain = trust_domain`
	}
	res, err := s.execRetrying(ctx, s.rebind(`INSERT INTO registry_federation_relationships
		(trust_domain, bundle_endpoint_url, bundle_endpoint_profile, endpoint_spiffe_id, trust_domain_bundle, created_at, updated_at)
		SELECT ?, ?, ?, ?, ?, ?, ? `+from+`WHERE (SELECT COUNT(*) FROM registry_federation_relationships) < ?
		`+conflict),
		r.TrustDomain.Name(), r.BundleEndpointURL, r.BundleEndpointProfile, idString(r.EndpointSPIFFEID), bundleBytes(r.TrustDomainBundle),
		r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro(), registry.MaxFederationRelationships)
	if err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("sqlstore: storing the federation relationship with %q: %w", r.TrustDomain, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("sqlstore: storing the federation relationship with %q: %w", r.TrustDomain, err)
	}
	if n == 0 {
		if _, err := s.GetFederationRelationship(ctx, r.TrustDomain); err == nil {
			return registry.FederationRelationship{}, registry.FederationRelationshipExists(r.TrustDomain)
		} else if !errors.Is(err, registry.ErrNotFound) {
			return registry.FederationRelationship{}, err
		}
		return registry.FederationRelationship{}, registry.TooManyFederationRelationships()
	}
	s.signal(registry.TopicFederation)
	return r, nil
}

// UpdateFederationRelationship implements [registry.FederationStore] with
// one update, which keeps created_at.
func (s *Store) UpdateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (registry.FederationRelationship, error) {
	r, err := registry.PrepareFederationRelationship(r, s.now())
	if err != nil {
		return registry.FederationRelationship{}, err
	}
	var created int64
	args := []any{r.BundleEndpointURL, r.BundleEndpointProfile, idString(r.EndpointSPIFFEID), bundleBytes(r.TrustDomainBundle),
		r.UpdatedAt.UnixMicro(), r.TrustDomain.Name()}
	if s.dialect.mysql {
		created, err = s.updateRelationshipMySQL(ctx, args, r.TrustDomain.Name())
	} else {
		err = s.db.QueryRowContext(ctx, s.rebind(`UPDATE registry_federation_relationships
		SET bundle_endpoint_url = ?, bundle_endpoint_profile = ?, endpoint_spiffe_id = ?, trust_domain_bundle = ?, updated_at = ?
		WHERE trust_domain = ? RETURNING created_at`), args...).Scan(&created)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return registry.FederationRelationship{}, registry.NotFoundf("federation relationship with %q", r.TrustDomain)
	}
	if err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("sqlstore: updating the federation relationship with %q: %w", r.TrustDomain, err)
	}
	r.CreatedAt = fromMicros(created)
	s.signal(registry.TopicFederation)
	return r, nil
}

const relationshipColumns = `trust_domain, bundle_endpoint_url, bundle_endpoint_profile, endpoint_spiffe_id, trust_domain_bundle, created_at, updated_at`

// GetFederationRelationship implements [registry.FederationStore].
func (s *Store) GetFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) (registry.FederationRelationship, error) {
	if td.IsZero() {
		return registry.FederationRelationship{}, registry.NotFoundf("federation relationship with a zero trust domain")
	}
	r, err := scanRelationship(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+relationshipColumns+`
		FROM registry_federation_relationships WHERE trust_domain = ?`), td.Name()))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.FederationRelationship{}, registry.NotFoundf("federation relationship with %q", td)
	}
	if err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("sqlstore: reading the federation relationship: %w", err)
	}
	return r, nil
}

// ListFederationRelationships implements [registry.FederationStore].
func (s *Store) ListFederationRelationships(ctx context.Context) ([]registry.FederationRelationship, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+relationshipColumns+` FROM registry_federation_relationships ORDER BY trust_domain`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing federation relationships: %w", err)
	}
	defer rows.Close()
	out := []registry.FederationRelationship{}
	for rows.Next() {
		r, err := scanRelationship(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: listing federation relationships: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: listing federation relationships: %w", err)
	}
	return out, nil
}

// DeleteFederationRelationship implements [registry.FederationStore].
func (s *Store) DeleteFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	deleted, err := s.deleteRow(ctx, `DELETE FROM registry_federation_relationships WHERE trust_domain = ?`, td.Name())
	if err != nil {
		return fmt.Errorf("sqlstore: deleting the federation relationship: %w", err)
	}
	if !deleted {
		return registry.NotFoundf("federation relationship with %q", td)
	}
	s.signal(registry.TopicFederation)
	return nil
}

// scanRelationship reads one relationship row. The database is trusted no
// more than any input: every field is parsed and the record validated.
func scanRelationship(row scanner) (registry.FederationRelationship, error) {
	var (
		r                registry.FederationRelationship
		td, endpointID   string
		created, updated int64
	)
	if err := row.Scan(&td, &r.BundleEndpointURL, &r.BundleEndpointProfile, &endpointID, &r.TrustDomainBundle, &created, &updated); err != nil {
		return registry.FederationRelationship{}, err
	}
	var err error
	if r.TrustDomain, err = spiffeid.TrustDomainFromString(td); err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("decoding stored federation relationship: %w", err)
	}
	if endpointID != "" {
		if r.EndpointSPIFFEID, err = spiffeid.FromString(endpointID); err != nil {
			return registry.FederationRelationship{}, fmt.Errorf("decoding stored federation relationship: %w", err)
		}
	}
	if len(r.TrustDomainBundle) == 0 {
		r.TrustDomainBundle = nil
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := r.Validate(); err != nil {
		return registry.FederationRelationship{}, fmt.Errorf("decoding stored federation relationship: %w", err)
	}
	return r, nil
}

// idString is the stored form of an optional SPIFFE ID: "" for none.
func idString(id spiffeid.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// bundleBytes is the stored form of an optional document: empty, not
// NULL, for none.
func bundleBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
