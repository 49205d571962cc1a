package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	_ registry.AgentStore        = (*Store)(nil)
	_ registry.TokenStore        = (*Store)(nil)
	_ registry.BundleStore       = (*Store)(nil)
	_ registry.ServerBundleStore = (*Store)(nil)
)

// The node-side records are written by single statements, each atomic on
// its own, without the table lock that orders the entries' change feed:
// they have no feed. Join tokens have no notification topic either.

const agentColumns = `id, attestor_type, selectors, serial_number, previous_serial_number, expires_at, can_reattest, banned, created_at, updated_at`

// PutAgent implements [registry.AgentStore] with one upsert, which keeps
// the CreatedAt of a record it replaces, and its ban.
func (s *Store) PutAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	a, err := registry.PrepareAgent(a, s.now())
	if err != nil {
		return registry.Agent{}, err
	}
	var created, banned int64
	if s.dialect.mysql {
		created, banned, err = s.putAgentMySQL(ctx, []any{a.ID.String(), a.AttestorType, selectorsJSON(a.Selectors), a.SerialNumber, a.PreviousSerialNumber,
			a.ExpiresAt.UnixMicro(), boolInt(a.CanReattest), boolInt(a.Banned), a.CreatedAt.UnixMicro(), a.UpdatedAt.UnixMicro()}, a.ID.String())
	} else {
		err = s.db.QueryRowContext(ctx, s.rebind(`INSERT INTO registry_agents (`+agentColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			attestor_type = excluded.attestor_type,
			selectors = excluded.selectors,
			serial_number = excluded.serial_number,
			previous_serial_number = excluded.previous_serial_number,
			expires_at = excluded.expires_at,
			can_reattest = excluded.can_reattest,
			banned = CASE WHEN registry_agents.banned <> 0 THEN registry_agents.banned ELSE excluded.banned END,
			updated_at = excluded.updated_at
		RETURNING created_at, banned`),
			a.ID.String(), a.AttestorType, selectorsJSON(a.Selectors), a.SerialNumber, a.PreviousSerialNumber,
			a.ExpiresAt.UnixMicro(), boolInt(a.CanReattest), boolInt(a.Banned), a.CreatedAt.UnixMicro(), a.UpdatedAt.UnixMicro(),
		).Scan(&created, &banned)
	}
	if err != nil {
		return registry.Agent{}, fmt.Errorf("sqlstore: storing agent %q: %w", a.ID, err)
	}
	a.CreatedAt = fromMicros(created)
	a.Banned = banned != 0
	s.signal(registry.TopicAgents)
	return a, nil
}

// UpdateAgent implements [registry.AgentStore] with one UPDATE, which
// writes nothing when the row is gone, keeps CreatedAt and the ban.
func (s *Store) UpdateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	a, err := registry.PrepareAgent(a, s.now())
	if err != nil {
		return registry.Agent{}, err
	}
	var created, banned int64
	if s.dialect.mysql {
		created, banned, err = s.updateAgentMySQL(ctx, []any{a.AttestorType, selectorsJSON(a.Selectors), a.SerialNumber, a.PreviousSerialNumber,
			a.ExpiresAt.UnixMicro(), boolInt(a.CanReattest), boolInt(a.Banned), a.UpdatedAt.UnixMicro(), a.ID.String()}, a.ID.String(), boolInt(a.Banned))
	} else {
		err = s.db.QueryRowContext(ctx, s.rebind(`UPDATE registry_agents SET
			attestor_type = ?,
			selectors = ?,
			serial_number = ?,
			previous_serial_number = ?,
			expires_at = ?,
			can_reattest = ?,
			banned = CASE WHEN banned <> 0 THEN banned ELSE ? END,
			updated_at = ?
		WHERE id = ?
		RETURNING created_at, banned`),
			a.AttestorType, selectorsJSON(a.Selectors), a.SerialNumber, a.PreviousSerialNumber,
			a.ExpiresAt.UnixMicro(), boolInt(a.CanReattest), boolInt(a.Banned), a.UpdatedAt.UnixMicro(), a.ID.String(),
		).Scan(&created, &banned)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Agent{}, registry.NotFoundf("agent %q", a.ID)
	}
	if err != nil {
		return registry.Agent{}, fmt.Errorf("sqlstore: updating agent %q: %w", a.ID, err)
	}
	a.CreatedAt = fromMicros(created)
	a.Banned = banned != 0
	s.signal(registry.TopicAgents)
	return a, nil
}

// selectorsJSON encodes an agent's selectors for the selectors column.
func selectorsJSON(sels []attest.Selector) string {
	texts := make([]string, len(sels))
	for i, sel := range sels {
		texts[i] = sel.String()
	}
	b, _ := json.Marshal(texts) // a []string always encodes
	return string(b)
}

// GetAgent implements [registry.AgentStore].
func (s *Store) GetAgent(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	if id.IsZero() {
		return registry.Agent{}, registry.NotFoundf("agent with a zero ID")
	}
	a, err := scanAgent(s.db.QueryRowContext(ctx, s.rebind(`SELECT `+agentColumns+` FROM registry_agents WHERE id = ?`), id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Agent{}, registry.NotFoundf("agent %q", id)
	}
	if err != nil {
		return registry.Agent{}, fmt.Errorf("sqlstore: reading agent: %w", err)
	}
	return a, nil
}

// ListAgents implements [registry.AgentStore].
func (s *Store) ListAgents(ctx context.Context) ([]registry.Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+agentColumns+` FROM registry_agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing agents: %w", err)
	}
	defer rows.Close()
	out := []registry.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: listing agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: listing agents: %w", err)
	}
	return out, nil
}

// DeleteAgent implements [registry.AgentStore].
func (s *Store) DeleteAgent(ctx context.Context, id spiffeid.ID) error {
	deleted, err := s.deleteRow(ctx, `DELETE FROM registry_agents WHERE id = ?`, id.String())
	if err != nil {
		return fmt.Errorf("sqlstore: deleting agent: %w", err)
	}
	if !deleted {
		return registry.NotFoundf("agent %q", id)
	}
	s.signal(registry.TopicAgents)
	return nil
}

type scanner interface{ Scan(dest ...any) error }

// scanAgent reads one agent row. The database is trusted no more than any
// input: every field is parsed and the record validated.
func scanAgent(row scanner) (registry.Agent, error) {
	var (
		a                         registry.Agent
		id, sels                  string
		expires, created, updated int64
		canReattest, banned       int64
	)
	if err := row.Scan(&id, &a.AttestorType, &sels, &a.SerialNumber, &a.PreviousSerialNumber,
		&expires, &canReattest, &banned, &created, &updated); err != nil {
		return registry.Agent{}, err
	}
	var err error
	if a.ID, err = spiffeid.FromString(id); err != nil {
		return registry.Agent{}, fmt.Errorf("decoding stored agent: %w", err)
	}
	var texts []string
	if err := json.Unmarshal([]byte(sels), &texts); err != nil {
		return registry.Agent{}, fmt.Errorf("decoding stored agent %q: %w", a.ID, err)
	}
	if len(texts) > registry.MaxSelectors {
		return registry.Agent{}, fmt.Errorf("decoding stored agent %q: %d selectors", a.ID, len(texts))
	}
	for _, text := range texts {
		sel, err := attest.ParseSelector(text)
		if err != nil {
			return registry.Agent{}, fmt.Errorf("decoding stored agent %q: %w", a.ID, err)
		}
		a.Selectors = append(a.Selectors, sel)
	}
	a.ExpiresAt = fromMicros(expires)
	a.CanReattest = canReattest != 0
	a.Banned = banned != 0
	a.CreatedAt = fromMicros(created)
	a.UpdatedAt = fromMicros(updated)
	if err := a.Validate(); err != nil {
		return registry.Agent{}, fmt.Errorf("decoding stored agent %q: %w", a.ID, err)
	}
	return a, nil
}

// CreateToken implements [registry.TokenStore]. Of concurrent calls with
// one ID, the database lets exactly one insert.
func (s *Store) CreateToken(ctx context.Context, t registry.JoinToken) error {
	t, err := registry.PrepareToken(t)
	if err != nil {
		return err
	}
	agentID := ""
	if !t.AgentID.IsZero() {
		agentID = t.AgentID.String()
	}
	// On MySQL, an update that changes nothing affects no row.
	conflict := `ON CONFLICT (id) DO NOTHING`
	if s.dialect.mysql {
		conflict = `ON DUPLICATE KEY UPDATE id = id`
	}
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO registry_join_tokens (id, secret_hash, agent_id, expires_at)
		VALUES (?, ?, ?, ?) `+conflict),
		t.ID, t.SecretHash, agentID, t.ExpiresAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlstore: storing join token %q: %w", t.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: storing join token %q: %w", t.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: join token %q", registry.ErrAlreadyExists, t.ID)
	}
	return nil
}

// GetToken implements [registry.TokenStore].
func (s *Store) GetToken(ctx context.Context, id string) (registry.JoinToken, error) {
	if !registry.ValidTokenID(id) {
		return registry.JoinToken{}, registry.NotFoundf("join token of a malformed ID")
	}
	t := registry.JoinToken{ID: id}
	var agentID string
	var expires int64
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT secret_hash, agent_id, expires_at FROM registry_join_tokens WHERE id = ?`), id).
		Scan(&t.SecretHash, &agentID, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.JoinToken{}, registry.NotFoundf("join token %q", id)
	}
	if err != nil {
		return registry.JoinToken{}, fmt.Errorf("sqlstore: reading join token %q: %w", id, err)
	}
	if agentID != "" {
		if t.AgentID, err = spiffeid.FromString(agentID); err != nil {
			return registry.JoinToken{}, fmt.Errorf("sqlstore: decoding stored join token %q: %w", id, err)
		}
	}
	t.ExpiresAt = fromMicros(expires)
	if err := t.Validate(); err != nil {
		return registry.JoinToken{}, fmt.Errorf("sqlstore: decoding stored join token %q: %w", id, err)
	}
	return t, nil
}

// DeleteToken implements [registry.TokenStore]. The DELETE is the whole
// test-and-set: the database removes a row once, so of concurrent calls, in
// this process or on other servers sharing the database, exactly one sees
// a row affected.
func (s *Store) DeleteToken(ctx context.Context, id string) (bool, error) {
	if !registry.ValidTokenID(id) {
		return false, nil
	}
	deleted, err := s.deleteRow(ctx, `DELETE FROM registry_join_tokens WHERE id = ?`, id)
	if err != nil {
		return false, fmt.Errorf("sqlstore: deleting join token %q: %w", id, err)
	}
	return deleted, nil
}

// PruneTokens implements [registry.TokenStore].
func (s *Store) PruneTokens(ctx context.Context, t time.Time) (int, error) {
	// Stored times are whole microseconds, so "before t" is "before t
	// rounded up to the microsecond".
	cutoff := ceilMicros(t)
	res, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM registry_join_tokens WHERE expires_at < ?`), cutoff)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: pruning join tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlstore: pruning join tokens: %w", err)
	}
	return int(n), nil
}

// deleteRow runs a DELETE of at most one row and reports whether it removed
// one.
func (s *Store) deleteRow(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.rebind(query), args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// fromMicros converts a stored time back; it is exact for times in store
// form (see registry.StoreTime).
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// ceilMicros returns t in microseconds since the Unix epoch, rounded up.
// (t.UnixMicro rounds down, before the epoch too.)
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}
