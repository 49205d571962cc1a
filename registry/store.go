package registry

import "context"

// A Reader finds entries.
type Reader interface {
	// Get returns the entry with the given ID, or an error wrapping
	// [ErrNotFound].
	Get(ctx context.Context, id string) (Entry, error)
	// List returns the entries that match f, ordered by ID, one page at a
	// time. It returns the token of the next page, or "" after the last page.
	// Paging is stable: an entry that exists, unchanged, for the whole walk is
	// returned exactly once, whatever else is written meanwhile.
	List(ctx context.Context, f Filter, p Page) (entries []Entry, next string, err error)
}

// A Writer creates, changes and removes entries. Every successful write
// appends one [Event] to the store's change feed, atomically with the write.
type Writer interface {
	// Create stores a new entry and returns it as stored: with its ID, or
	// a new one when e.ID is empty, Revision 1, CreatedAt and UpdatedAt
	// set, and Selectors and FederatesWith sorted. An ID given must have
	// the form of those [NewEntryID] makes ([ValidEntryID]), and be no
	// stored entry's. The given Revision must be zero. Errors wrap
	// [ErrInvalid], or [ErrAlreadyExists] when an entry has the ID or is
	// similar ([SimilarityKey]).
	Create(ctx context.Context, e Entry) (Entry, error)
	// Update replaces the caller-provided fields of the entry with e.ID, if
	// its stored revision is still e.Revision, and returns the entry as
	// stored, with the next revision. Errors wrap [ErrNotFound],
	// [ErrConflict], [ErrInvalid] or [ErrAlreadyExists].
	Update(ctx context.Context, e Entry) (Entry, error)
	// Delete removes the entry with the given ID and returns it as it was.
	// If revision is not zero, the stored revision must equal it, else the
	// error wraps [ErrConflict]. Errors also wrap [ErrNotFound].
	Delete(ctx context.Context, id string, revision int64) (Entry, error)
}

// A ChangeFeed lists the writes made to a store, in the order they were
// made, so that consumers can follow the store incrementally instead of
// reading it again.
type ChangeFeed interface {
	// Changes returns at most limit events with a sequence number greater
	// than after, in ascending order. limit must be positive. An empty result
	// means the consumer is up to date.
	Changes(ctx context.Context, after int64, limit int) ([]Event, error)
	// Head returns the sequence number of the latest event, or 0 if there is
	// none. A consumer that reads Head, then lists every entry, then applies
	// the changes after Head, ends with an exact copy of the store.
	Head(ctx context.Context) (int64, error)
}

// A Store keeps registration entries and the feed of their changes.
// Implementations are safe for concurrent use; see registry/memstore and
// registry/sqlstore, and registry/registrytest for the contract they pass.
type Store interface {
	Reader
	Writer
	ChangeFeed
}
