package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/spiffekit/spiffekit/registry"
)

// List implements [registry.Reader]. Filters run in the database; the page
// token is the last ID of the previous page.
func (s *Store) List(ctx context.Context, f registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	add("e.id > ?", p.Token)
	if !f.BySPIFFEID.IsZero() {
		add("e.spiffe_id = ?", f.BySPIFFEID.String())
	}
	if !f.ByParentID.IsZero() {
		add("e.parent_id = ?", f.ByParentID.String())
	}
	if f.ByHint != "" {
		add("e.hint = ?", f.ByHint)
	}
	if sf := f.BySelectors; sf != nil {
		vals := make([]string, len(sf.Selectors))
		for i, sel := range sf.Selectors {
			vals[i] = sel.String()
		}
		setCondition(add, "registry_selectors", "selector", vals, sf.Match)
	}
	if ff := f.ByFederatesWith; ff != nil {
		vals := make([]string, len(ff.TrustDomains))
		for i, td := range ff.TrustDomains {
			vals[i] = td.Name()
		}
		setCondition(add, "registry_federates_with", "trust_domain", vals, ff.Match)
	}
	q := "SELECT e.data FROM registry_entries e WHERE " + strings.Join(where, " AND ") + " ORDER BY e.id"
	if p.Size > 0 {
		q += fmt.Sprintf(" LIMIT %d", p.Size+1) // one more, to learn whether there is a next page
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: listing entries: %w", err)
	}
	defer rows.Close()
	var out []registry.Entry
	var d decoder
	var data sql.RawBytes // valid until the next row: decode copies what it keeps
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return nil, "", fmt.Errorf("sqlstore: listing entries: %w", err)
		}
		e, err := d.decode(data)
		if err != nil {
			return nil, "", fmt.Errorf("sqlstore: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlstore: listing entries: %w", err)
	}
	next := ""
	if p.Size > 0 && len(out) > p.Size {
		out = out[:p.Size]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// setCondition adds the SQL form of a set comparison between an entry's rows
// in table and vals (which may repeat; the entry's rows do not).
func setCondition(add func(string, ...any), table, column string, vals []string, mode registry.MatchMode) {
	slices.Sort(vals)
	vals = slices.Compact(vals)
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")"
	sub := "SELECT 1 FROM " + table + " t WHERE t.entry_id = e.id"
	superset := func() {
		for _, v := range args {
			add("EXISTS ("+sub+" AND t."+column+" = ?)", v)
		}
	}
	subset := func() {
		add("EXISTS (" + sub + ")")
		add("NOT EXISTS ("+sub+" AND t."+column+" NOT IN "+in+")", args...)
	}
	switch mode {
	case registry.MatchSubset:
		subset()
	case registry.MatchSuperset:
		superset()
	case registry.MatchAny:
		add("EXISTS ("+sub+" AND t."+column+" IN "+in+")", args...)
	default:
		superset()
		subset()
	}
}

// Changes implements [registry.ChangeFeed].
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: sqlstore: change limit must be positive", registry.ErrInvalid)
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(fmt.Sprintf(
		`SELECT seq, op, entry_id, before_data, after_data FROM registry_events WHERE seq > ? ORDER BY seq LIMIT %d`, limit)), after)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
	}
	defer rows.Close()
	var out []registry.Event
	for rows.Next() {
		var ev registry.Event
		var op int64
		var before, after sql.NullString
		if err := rows.Scan(&ev.Seq, &op, &ev.EntryID, &before, &after); err != nil {
			return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
		}
		ev.Op = registry.Op(op)
		if ev.Before, err = decodeNull(before); err != nil {
			return nil, err
		}
		if ev.After, err = decodeNull(after); err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: reading changes: %w", err)
	}
	return out, nil
}

func decodeNull(data sql.NullString) (*registry.Entry, error) {
	if !data.Valid {
		return nil, nil
	}
	e, err := decode(data.String)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return &e, nil
}

// Head implements [registry.ChangeFeed].
func (s *Store) Head(ctx context.Context) (int64, error) {
	var head int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM registry_events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlstore: reading change feed head: %w", err)
	}
	return head, nil
}
