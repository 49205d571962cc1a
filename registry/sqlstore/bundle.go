package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// PutBundle implements [registry.BundleStore] with one upsert.
func (s *Store) PutBundle(ctx context.Context, b registry.FederatedBundle) (registry.FederatedBundle, error) {
	b, err := registry.PrepareBundle(b, s.now())
	if err != nil {
		return registry.FederatedBundle{}, err
	}
	if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO registry_bundles (trust_domain, document, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`),
		b.TrustDomain.Name(), b.Document, b.UpdatedAt.UnixMicro()); err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("sqlstore: storing bundle of %q: %w", b.TrustDomain, err)
	}
	s.signal(registry.TopicBundles)
	return b, nil
}

// GetBundle implements [registry.BundleStore].
func (s *Store) GetBundle(ctx context.Context, td spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	if td.IsZero() {
		return registry.FederatedBundle{}, fmt.Errorf("%w: bundle of a zero trust domain", registry.ErrNotFound)
	}
	b, err := scanBundle(s.db.QueryRowContext(ctx, s.rebind(`SELECT trust_domain, document, updated_at FROM registry_bundles WHERE trust_domain = ?`), td.Name()))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.FederatedBundle{}, fmt.Errorf("%w: bundle of %q", registry.ErrNotFound, td)
	}
	if err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("sqlstore: reading bundle: %w", err)
	}
	return b, nil
}

// ListBundles implements [registry.BundleStore].
func (s *Store) ListBundles(ctx context.Context) ([]registry.FederatedBundle, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT trust_domain, document, updated_at FROM registry_bundles ORDER BY trust_domain`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing bundles: %w", err)
	}
	defer rows.Close()
	out := []registry.FederatedBundle{}
	for rows.Next() {
		b, err := scanBundle(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: listing bundles: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: listing bundles: %w", err)
	}
	return out, nil
}

// DeleteBundle implements [registry.BundleStore].
func (s *Store) DeleteBundle(ctx context.Context, td spiffeid.TrustDomain) error {
	deleted, err := s.deleteRow(ctx, `DELETE FROM registry_bundles WHERE trust_domain = ?`, td.Name())
	if err != nil {
		return fmt.Errorf("sqlstore: deleting bundle: %w", err)
	}
	if !deleted {
		return fmt.Errorf("%w: bundle of %q", registry.ErrNotFound, td)
	}
	s.signal(registry.TopicBundles)
	return nil
}

// scanBundle reads one bundle row and validates it.
func scanBundle(row scanner) (registry.FederatedBundle, error) {
	var (
		b       registry.FederatedBundle
		name    string
		updated int64
	)
	if err := row.Scan(&name, &b.Document, &updated); err != nil {
		return registry.FederatedBundle{}, err
	}
	var err error
	if b.TrustDomain, err = spiffeid.TrustDomainFromString(name); err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("decoding stored bundle: %w", err)
	}
	b.UpdatedAt = fromMicros(updated)
	if err := b.Validate(); err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("decoding stored bundle: %w", err)
	}
	return b, nil
}

// PutServerBundle implements [registry.ServerBundleStore] with one upsert.
func (s *Store) PutServerBundle(ctx context.Context, b registry.ServerBundle) error {
	b, err := registry.PrepareServerBundle(b, s.now())
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO registry_server_bundles (server_id, document, expires_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (server_id) DO UPDATE SET document = excluded.document, expires_at = excluded.expires_at, updated_at = excluded.updated_at`),
		b.ServerID, b.Document, b.ExpiresAt.UnixMicro(), b.UpdatedAt.UnixMicro()); err != nil {
		return fmt.Errorf("sqlstore: storing server bundle %q: %w", b.ServerID, err)
	}
	s.signal(registry.TopicAuthorities)
	return nil
}

// ListServerBundles implements [registry.ServerBundleStore]. Expired
// contributions stay in the table, one per server ID ever stored, since
// servers that share it need not agree on the time.
func (s *Store) ListServerBundles(ctx context.Context, now time.Time) ([]registry.ServerBundle, error) {
	// Stored times are whole microseconds, so "after now" is "after now
	// rounded down to the microsecond", which t.UnixMicro is, before the
	// epoch too.
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT server_id, document, expires_at, updated_at FROM registry_server_bundles
		WHERE expires_at > ? ORDER BY server_id`), now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing server bundles: %w", err)
	}
	defer rows.Close()
	var out []registry.ServerBundle
	for rows.Next() {
		var b registry.ServerBundle
		var expires, updated int64
		if err := rows.Scan(&b.ServerID, &b.Document, &expires, &updated); err != nil {
			return nil, fmt.Errorf("sqlstore: listing server bundles: %w", err)
		}
		b.ExpiresAt, b.UpdatedAt = fromMicros(expires), fromMicros(updated)
		if err := b.Validate(); err != nil {
			return nil, fmt.Errorf("sqlstore: decoding stored server bundle: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: listing server bundles: %w", err)
	}
	return out, nil
}
