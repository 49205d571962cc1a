package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/registry"
)

var _ registry.BatchCreator = (*Store)(nil)

// The statements of a batch, those of Create, prepared once per
// transaction: parsing them again for every row would cost as much as
// running them. An entry similar to a stored one conflicts on the unique
// similarity column and is not inserted: that is the similarity check,
// without a query of its own.
const (
	batchInsertEntry = `INSERT INTO registry_entries (id, spiffe_id, parent_id, hint, similarity, revision, data) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (similarity) DO NOTHING`
	// On MySQL, a duplicate key makes an update that changes nothing,
	// which affects no row. Entry IDs are chosen at random or checked
	// first, so that the duplicate key is the similarity.
	batchInsertEntryMySQL = `INSERT INTO registry_entries (id, spiffe_id, parent_id, hint, similarity, revision, data) VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id`
	batchInsertSel        = `INSERT INTO registry_selectors (entry_id, selector) VALUES (?, ?)`
	batchInsertFed        = `INSERT INTO registry_federates_with (entry_id, trust_domain) VALUES (?, ?)`
	batchAppendEvent      = `INSERT INTO registry_events (op, entry_id, before_data, after_data) VALUES (?, ?, ?, ?)`
)

// batchStmts are the prepared statements of one batch transaction.
type batchStmts struct {
	entry, selector, federates, event *sql.Stmt
}

func (s *Store) prepareBatch(ctx context.Context, tx *sql.Tx) (*batchStmts, error) {
	var b batchStmts
	entry := batchInsertEntry
	if s.dialect.mysql {
		entry = batchInsertEntryMySQL
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&b.entry, entry},
		{&b.selector, batchInsertSel},
		{&b.federates, batchInsertFed},
		{&b.event, batchAppendEvent},
	} {
		st, err := tx.PrepareContext(ctx, s.rebind(p.q))
		if err != nil {
			return nil, fmt.Errorf("preparing statement: %w", err)
		}
		*p.stmt = st
	}
	return &b, nil
}

// CreateBatch implements [registry.BatchCreator]. The whole batch is one
// transaction, serialized with every other entry write as Create is (on
// PostgreSQL by the same table lock), so that the batch's events take
// consecutive places in the change feed and commit in order.
func (s *Store) CreateBatch(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	results, _, err := registry.PrepareBatch(entries, s.now())
	if err != nil {
		return nil, err
	}
	data := make([]string, len(results))
	for i := range results {
		if results[i].Err != nil {
			continue
		}
		if data[i], err = encode(results[i].Entry); err != nil {
			return nil, wrap(err)
		}
	}
	created := false
	err = s.inTx(ctx, "registry_events", func(tx *sql.Tx) error {
		st, err := s.prepareBatch(ctx, tx)
		if err != nil {
			return err
		}
		for i := range results {
			r := &results[i]
			if r.Err != nil {
				continue
			}
			e := r.Entry
			if entries[i].ID != "" { // chosen by the caller: it may be taken
				if err := s.checkIDFree(ctx, tx, e.ID); errors.Is(err, registry.ErrAlreadyExists) {
					r.Err, r.Entry = err, registry.Entry{}
					continue
				} else if err != nil {
					return err
				}
			}
			res, err := st.entry.ExecContext(ctx, e.ID, e.SPIFFEID.String(), e.ParentID.String(), e.Hint, similarity(e), e.Revision, data[i])
			if err != nil {
				return fmt.Errorf("inserting entry: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("inserting entry: %w", err)
			} else if n == 0 {
				r.Err, r.Entry = fmt.Errorf("%w: %s", registry.ErrAlreadyExists, e.SPIFFEID), registry.Entry{}
				continue
			}
			for _, sel := range e.Selectors {
				if _, err := st.selector.ExecContext(ctx, e.ID, sel.String()); err != nil {
					return fmt.Errorf("inserting selector: %w", err)
				}
			}
			for _, td := range e.FederatesWith {
				if _, err := st.federates.ExecContext(ctx, e.ID, td.Name()); err != nil {
					return fmt.Errorf("inserting federated trust domain: %w", err)
				}
			}
			if _, err := st.event.ExecContext(ctx, int64(registry.OpCreate), e.ID, nil, data[i]); err != nil {
				return fmt.Errorf("appending event: %w", err)
			}
			created = true
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err)
	}
	if created {
		s.signal(registry.TopicEntries)
	}
	return results, nil
}
