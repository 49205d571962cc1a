package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/spiffekit/spiffekit/registry"
)

// scanBatch is the number of rows ScanEntries hands a decoder at a time.
const scanBatch = 256

// rawBatch is scanBatch rows of stored entries, copied into one buffer:
// row i is buf[ends[i-1]:ends[i]].
type rawBatch struct {
	buf  []byte
	ends []int
}

// decodedBatch is a rawBatch decoded, or the error of its first bad row.
type decodedBatch struct {
	entries []registry.Entry
	err     error
}

// ScanEntries calls yield with every stored entry, in no particular order,
// from the calling goroutine, and returns the first error, yield's
// included, after which it calls yield no more. It is what an index reads
// at start (see registry/index.Scanner): unlike paging through List, it
// reads the table in one query, in its own order, without sorting or a
// lookup per row, and decodes the rows on every core while they arrive.
// The query is one statement, so it sees the entries as of one moment.
func (s *Store) ScanEntries(ctx context.Context, yield func(registry.Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT data FROM registry_entries`)
	if err != nil {
		return fmt.Errorf("sqlstore: scanning entries: %w", err)
	}
	workers := runtime.GOMAXPROCS(0)
	raw := make(chan rawBatch, workers)
	decoded := make(chan decodedBatch, workers)
	var readErr error
	var reader, decoders sync.WaitGroup
	reader.Go(func() {
		defer close(raw)
		defer rows.Close()
		readErr = readRows(ctx, rows, raw)
	})
	for range workers {
		decoders.Go(func() {
			var d decoder
			for b := range raw {
				select {
				case decoded <- d.decodeBatch(b):
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		decoders.Wait()
		close(decoded)
	}()
	var firstErr error
	for b := range decoded { // to the end, so that every decoder returns
		if firstErr != nil {
			continue
		}
		if firstErr = b.err; firstErr != nil {
			cancel()
			continue
		}
		for _, e := range b.entries {
			if firstErr = yield(e); firstErr != nil {
				cancel()
				break
			}
		}
	}
	reader.Wait()
	if firstErr == nil && readErr != nil {
		firstErr = fmt.Errorf("sqlstore: scanning entries: %w", readErr)
	}
	return firstErr
}

// readRows reads rows into batches sent on out until the rows end or ctx
// is done.
func readRows(ctx context.Context, rows *sql.Rows, out chan<- rawBatch) error {
	send := func(b rawBatch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var b rawBatch
	var data sql.RawBytes // reused; valid until the next row: copied below
	for rows.Next() {
		if err := rows.Scan(&data); err != nil {
			return err
		}
		if b.ends == nil {
			b = rawBatch{buf: make([]byte, 0, scanBatch*len(data)*5/4), ends: make([]int, 0, scanBatch)}
		}
		b.buf = append(b.buf, data...)
		b.ends = append(b.ends, len(b.buf))
		if len(b.ends) == scanBatch {
			if !send(b) {
				return ctx.Err()
			}
			b = rawBatch{}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(b.ends) > 0 && !send(b) {
		return ctx.Err()
	}
	return nil
}

// decodeBatch decodes the rows of b.
func (d *decoder) decodeBatch(b rawBatch) decodedBatch {
	out := make([]registry.Entry, len(b.ends))
	start := 0
	for i, end := range b.ends {
		e, err := d.decode(b.buf[start:end])
		if err != nil {
			return decodedBatch{err: fmt.Errorf("sqlstore: %w", err)}
		}
		out[i], start = e, end
	}
	return decodedBatch{entries: out}
}

// CountEntries returns the number of stored entries. An index reads it
// before ScanEntries to size its table once (see registry/index.Counter).
func (s *Store) CountEntries(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM registry_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlstore: counting entries: %w", err)
	}
	return n, nil
}
