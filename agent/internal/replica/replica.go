package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
)

// Entries is the agent's copy of the entries its server pushes, in as
// little memory as that takes: the issuer's index (registry/index) keeps
// the entries themselves; the replica keeps each entry's revision, which
// the agent tells the server when it syncs again, and the changes the index
// has not read yet.
//
// It is an index.Source for a single reader, the index, which reads the
// change feed in order: Changes(after) acknowledges every event up to
// after, and those are dropped. (registry/memstore keeps every entry, and
// every event for good, with the entries they carried: for ten thousand
// entries, 4.5 MB more.) It keeps no entries to list: List and Get
// answer only while it is empty, as when the index is built, before the
// first sync. Its methods are safe for concurrent use.
type Entries struct {
	topics broadcast.Topics

	mu     sync.Mutex
	revs   map[string]int64 // entry ID -> revision
	events []registry.Event // not yet read: sequence numbers dropped+1 to head
	drop   int64            // the sequence number of the last event dropped
	head   int64
}

var (
	_ index.Source      = (*Entries)(nil)
	_ registry.Notifier = (*Entries)(nil)
)

// errNotKept fails the reads of entries the replica does not keep.
var errNotKept = errors.New("agent: the replica keeps no entries to read; follow its change feed")

// New returns an empty replica.
func New() *Entries { return &Entries{revs: make(map[string]int64)} }

// Replicate applies the entries as the server holds them (with their IDs,
// revisions and timestamps) and removes the deleted IDs, recording each
// change in the change feed. Deletions are applied first; an upsert whose
// revision is not newer than the one held is ignored, so that replaying an
// update is harmless. Entries are validated; an invalid one fails the call
// before anything is applied.
func (r *Entries) Replicate(ctx context.Context, upserts []registry.Entry, deleted []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range upserts {
		if !registry.ValidEntryID(e.ID) {
			return fmt.Errorf("%w: agent: replicated entry ID %q is invalid", registry.ErrInvalid, e.ID)
		}
		if e.Revision < 1 {
			return fmt.Errorf("%w: agent: replicated entry %s has no revision", registry.ErrInvalid, e.ID)
		}
		if err := e.Validate(); err != nil {
			return err
		}
	}
	changed := false
	r.mu.Lock()
	for _, id := range deleted {
		if _, ok := r.revs[id]; !ok {
			continue
		}
		delete(r.revs, id)
		r.appendLocked(registry.Event{Op: registry.OpDelete, EntryID: id})
		changed = true
	}
	for _, e := range upserts {
		rev, ok := r.revs[e.ID]
		if ok && rev >= e.Revision {
			continue
		}
		r.revs[e.ID] = e.Revision
		c := e.Clone()
		op := registry.OpCreate
		if ok {
			op = registry.OpUpdate
		}
		r.appendLocked(registry.Event{Op: op, EntryID: c.ID, After: &c})
		changed = true
	}
	r.mu.Unlock()
	if changed {
		r.topics.Notify(uint64(registry.TopicEntries))
	}
	return nil
}

func (r *Entries) appendLocked(ev registry.Event) {
	r.head++
	ev.Seq = r.head
	r.events = append(r.events, ev)
}

// Revisions returns the ID and revision of every entry, as the agent tells
// its server what it holds.
func (r *Entries) Revisions() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.revs))
	for id, rev := range r.revs {
		out[id] = rev
	}
	return out
}

// Len returns the number of entries.
func (r *Entries) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.revs)
}

// Version returns a number that changes with every change of the entries
// (the sequence number of the last), as Head does, for a caller with no
// context to give.
func (r *Entries) Version() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head
}

// Changes implements registry.ChangeFeed for its one reader: the events up
// to after are dropped, and at most limit of the next ones returned.
//
// A call whose after is below what was dropped comes from the same reader
// (the index syncs from several goroutines), which had read and applied
// every dropped event before it asked for those after them: it gets the
// events after the ones dropped.
func (r *Entries) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: agent: change limit must be positive", registry.ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	after = max(after, r.drop)
	if n := min(after, r.head) - r.drop; n > 0 {
		clear(r.events[:n]) // no longer referenced by the backing array
		r.events = r.events[n:]
		r.drop += n
	}
	if len(r.events) == 0 {
		r.events = nil // let the backing array of a large sync go
		return nil, nil
	}
	return append([]registry.Event(nil), r.events[:min(len(r.events), limit)]...), nil
}

// Head implements registry.ChangeFeed.
func (r *Entries) Head(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.head, nil
}

// List implements registry.Reader while the replica is empty: no entry.
func (r *Entries) List(ctx context.Context, _ registry.Filter, _ registry.Page) ([]registry.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if r.Len() > 0 {
		return nil, "", errNotKept
	}
	return nil, "", nil
}

// Get implements registry.Reader: the replica keeps no entries to read.
func (r *Entries) Get(ctx context.Context, id string) (registry.Entry, error) {
	if err := ctx.Err(); err != nil {
		return registry.Entry{}, err
	}
	if r.Len() > 0 {
		return registry.Entry{}, errNotKept
	}
	return registry.Entry{}, fmt.Errorf("%w: %q", registry.ErrNotFound, id)
}

// Subscribe implements registry.Notifier: the replica signals
// registry.TopicEntries after each Replicate that changed something.
func (r *Entries) Subscribe(topics registry.Topic) (<-chan struct{}, func()) {
	return r.topics.Subscribe(uint64(topics))
}
