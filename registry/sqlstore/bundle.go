package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	upsert := `ON CONFLICT (trust_domain) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`
	if s.dialect.mysql {
		upsert = `ON DUPLICATE KEY UPDATE document = VALUES(document), updated_at = VALUES(updated_at)`
	}
	if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO registry_bundles (trust_domain, document, updated_at) VALUES (?, ?, ?) `+upsert),
		b.TrustDomain.Name(), b.Document, b.UpdatedAt.UnixMicro()); err != nil {
		return registry.FederatedBundle{}, fmt.Errorf("sqlstore: storing bundle of %q: %w", b.TrustDomain, err)
	}
	s.signal(registry.TopicBundles)
	return b, nil
}

// GetBundle implements [registry.BundleStore].
func (s *Store) GetBundle(ctx context.Context, td spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	if td.IsZero() {
		return registry.FederatedBundle{}, registry.NotFoundf("bundle of a zero trust domain")
	}
	b, err := scanBundle(s.db.QueryRowContext(ctx, s.rebind(`SELECT trust_domain, document, updated_at FROM registry_bundles WHERE trust_domain = ?`), td.Name()))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.FederatedBundle{}, registry.NotFoundf("bundle of %q", td)
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
		return registry.NotFoundf("bundle of %q", td)
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
	auths, err := encodeAuthorities(b.Authorities)
	if err != nil {
		return fmt.Errorf("sqlstore: storing server bundle %q: %w", b.ServerID, err)
	}
	upsert := `ON CONFLICT (server_id) DO UPDATE SET document = excluded.document, expires_at = excluded.expires_at,
			updated_at = excluded.updated_at, authorities = excluded.authorities`
	if s.dialect.mysql {
		upsert = `ON DUPLICATE KEY UPDATE document = VALUES(document), expires_at = VALUES(expires_at),
			updated_at = VALUES(updated_at), authorities = VALUES(authorities)`
	}
	if _, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO registry_server_bundles (server_id, document, expires_at, updated_at, authorities) VALUES (?, ?, ?, ?, ?) `+upsert),
		b.ServerID, b.Document, b.ExpiresAt.UnixMicro(), b.UpdatedAt.UnixMicro(), auths); err != nil {
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
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT server_id, document, expires_at, updated_at, authorities FROM registry_server_bundles
		WHERE expires_at > ? ORDER BY server_id`), now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing server bundles: %w", err)
	}
	defer rows.Close()
	var out []registry.ServerBundle
	for rows.Next() {
		var b registry.ServerBundle
		var expires, updated int64
		var auths string
		if err := rows.Scan(&b.ServerID, &b.Document, &expires, &updated, &auths); err != nil {
			return nil, fmt.Errorf("sqlstore: listing server bundles: %w", err)
		}
		b.ExpiresAt, b.UpdatedAt = fromMicros(expires), fromMicros(updated)
		if b.Authorities, err = decodeAuthorities(auths); err != nil {
			return nil, fmt.Errorf("sqlstore: decoding stored server bundle: %w", err)
		}
		b.Authorities = slices.DeleteFunc(b.Authorities, func(a registry.ServerAuthority) bool {
			return s.skipKind(a.Kind, "server authority", b.ServerID, a.ID)
		})
		if len(b.Authorities) == 0 {
			b.Authorities = nil
		}
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

// authorityRecord is the stored JSON form of a registry.ServerAuthority.
// Its field names are part of the schema.
type authorityRecord struct {
	Kind        registry.AuthorityKind  `json:"kind"`
	ID          string                  `json:"id"`
	State       registry.AuthorityState `json:"state"`
	Tainted     bool                    `json:"tainted,omitempty"`
	NotAfter    int64                   `json:"not_after_us"`
	Certificate []byte                  `json:"certificate,omitempty"`
}

// encodeAuthorities returns the stored form of a server's authorities: ""
// for none, as rows written before schema version 5 hold.
func encodeAuthorities(auths []registry.ServerAuthority) (string, error) {
	if len(auths) == 0 {
		return "", nil
	}
	recs := make([]authorityRecord, len(auths))
	for i, a := range auths {
		recs[i] = authorityRecord{Kind: a.Kind, ID: a.ID, State: a.State, Tainted: a.Tainted,
			NotAfter: a.NotAfter.UnixMicro(), Certificate: a.Certificate}
	}
	data, err := json.Marshal(recs)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// decodeAuthorities parses the stored form; the caller validates the
// result.
func decodeAuthorities(data string) ([]registry.ServerAuthority, error) {
	if data == "" {
		return nil, nil
	}
	var recs []authorityRecord
	if err := json.Unmarshal([]byte(data), &recs); err != nil {
		return nil, fmt.Errorf("authorities: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]registry.ServerAuthority, len(recs))
	for i, r := range recs {
		out[i] = registry.ServerAuthority{Kind: r.Kind, ID: r.ID, State: r.State, Tainted: r.Tainted,
			NotAfter: fromMicros(r.NotAfter), Certificate: r.Certificate}
	}
	return out, nil
}

// PutAuthorityMark implements [registry.ServerBundleStore] with one
// upsert, which keeps a stored revocation.
func (s *Store) PutAuthorityMark(ctx context.Context, m registry.AuthorityMark) (registry.AuthorityMark, error) {
	m, err := registry.PrepareAuthorityMark(m, s.now())
	if err != nil {
		return registry.AuthorityMark{}, err
	}
	var revoked int64
	if s.dialect.mysql {
		revoked, err = s.putAuthorityMarkMySQL(ctx, []any{string(m.Kind), m.AuthorityID, m.ServerID, boolInt(m.Revoked), m.ExpiresAt.UnixMicro(), m.UpdatedAt.UnixMicro()},
			string(m.Kind), m.AuthorityID)
	} else {
		err = s.db.QueryRowContext(ctx, s.rebind(`INSERT INTO registry_authority_marks (kind, authority_id, server_id, revoked, expires_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, authority_id) DO UPDATE SET server_id = excluded.server_id,
			revoked = CASE WHEN registry_authority_marks.revoked <> 0 THEN 1 ELSE excluded.revoked END,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at
		RETURNING revoked`),
			string(m.Kind), m.AuthorityID, m.ServerID, boolInt(m.Revoked), m.ExpiresAt.UnixMicro(), m.UpdatedAt.UnixMicro()).Scan(&revoked)
	}
	if err != nil {
		return registry.AuthorityMark{}, fmt.Errorf("sqlstore: storing the mark of %s authority %q: %w", m.Kind, m.AuthorityID, err)
	}
	m.Revoked = revoked != 0
	s.signal(registry.TopicAuthorities)
	return m, nil
}

// ListAuthorityMarks implements [registry.ServerBundleStore]. Expired
// marks stay in the table, as server bundles do: one per authority ever
// marked.
func (s *Store) ListAuthorityMarks(ctx context.Context, now time.Time) ([]registry.AuthorityMark, error) {
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT kind, authority_id, server_id, revoked, expires_at, updated_at
		FROM registry_authority_marks WHERE expires_at > ? ORDER BY kind, authority_id`), now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing authority marks: %w", err)
	}
	defer rows.Close()
	var out []registry.AuthorityMark
	for rows.Next() {
		var (
			m                registry.AuthorityMark
			kind             string
			revoked          int64
			expires, updated int64
		)
		if err := rows.Scan(&kind, &m.AuthorityID, &m.ServerID, &revoked, &expires, &updated); err != nil {
			return nil, fmt.Errorf("sqlstore: listing authority marks: %w", err)
		}
		m.Kind, m.Revoked = registry.AuthorityKind(kind), revoked != 0
		m.ExpiresAt, m.UpdatedAt = fromMicros(expires), fromMicros(updated)
		if s.skipKind(m.Kind, "authority mark", m.ServerID, m.AuthorityID) {
			continue
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("sqlstore: decoding stored authority mark: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: listing authority marks: %w", err)
	}
	return out, nil
}

// maxKindLen bounds the name of an authority kind a later version may
// add; a longer name, or one of other characters, is corrupt.
const maxKindLen = 32

// maxLoggedKinds bounds the unknown kinds the store remembers having
// logged: a database of many is corrupt, and its rows are skipped
// without a word.
const maxLoggedKinds = 16

// skipKind reports whether an authority or mark of kind k is to be left
// out of a list: k is no kind this version knows, but may be one a later
// version added (1 to maxKindLen lower-case letters, digits, '-' and
// '_'), as servers of both versions share the database during an
// upgrade. Each such row is counted (see [Store.SkippedAuthorities]), and
// each kind logged once. A malformed kind is not skipped: validation then
// refuses the row as corrupt.
func (s *Store) skipKind(k registry.AuthorityKind, what, serverID, id string) bool {
	if k.Known() || !futureKind(string(k)) {
		return false
	}
	s.skipped.Add(1)
	s.kindsMu.Lock()
	first := !s.kindsLogged[k] && len(s.kindsLogged) < maxLoggedKinds
	if first {
		if s.kindsLogged == nil {
			s.kindsLogged = make(map[registry.AuthorityKind]bool)
		}
		s.kindsLogged[k] = true
	}
	s.kindsMu.Unlock()
	if first {
		s.log.Warn("skipping the authorities and marks of a kind this version does not know; a server of a later version shares the database",
			"kind", string(k), "first", what, "server_id", serverID, "authority_id", id)
	}
	return true
}

func futureKind(k string) bool {
	if k == "" || len(k) > maxKindLen {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// SkippedAuthorities returns how many authority descriptions and marks of
// a kind this version does not know [Store.ListServerBundles] and
// [Store.ListAuthorityMarks] have left out since the store was opened,
// counted at every list. A server of a later version that shares the
// database publishes them; the lists hold the rest.
func (s *Store) SkippedAuthorities() uint64 { return s.skipped.Load() }
