package memstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Config configures a [Store].
type Config struct {
	// Now returns the current time for entry and record timestamps; nil
	// means time.Now.
	Now func() time.Time
}

// Store is an in-memory [registry.Store] and [registry.Notifier], and also
// keeps node agents' records: it is a [registry.AgentStore],
// [registry.TokenStore], [registry.BundleStore] and
// [registry.ServerBundleStore], and federation relationships: it is a
// [registry.FederationStore]. The zero value is not usable; call [New]. A
// Store is safe for concurrent use.
//
// Every write that changes entries, agents, federated bundles, server
// bundles, authority marks or federation relationships signals the subscribers of its topic (see
// [Store.Subscribe]) before it returns, once readers can see it. Join
// tokens have no topic.
//
// Stored entries and records are immutable: writes replace them, and readers receive deep
// copies, so no caller can change what another one sees.
type Store struct {
	now    func() time.Time
	topics broadcast.Topics

	mu      sync.RWMutex
	entries map[string]*registry.Entry
	similar map[similarity]string // digest of registry.SimilarityKey -> entry ID
	// sorted holds entry IDs in order, possibly including deleted ones;
	// pending holds IDs created since sorted was last merged.
	sorted  []string
	pending []string
	deleted int // IDs in sorted that are no longer in entries
	events  []registry.Event

	// nodeMu guards the node-side records, kept apart from the entries so
	// that agent and token traffic does not wait for entry listings.
	nodeMu        sync.Mutex
	agents        map[spiffeid.ID]registry.Agent
	tokens        map[string]registry.JoinToken
	bundles       map[spiffeid.TrustDomain]registry.FederatedBundle
	serverBundles map[string]registry.ServerBundle
	marks         map[markKey]registry.AuthorityMark
	relationships map[spiffeid.TrustDomain]registry.FederationRelationship
}

var (
	_ registry.Store    = (*Store)(nil)
	_ registry.Notifier = (*Store)(nil)
)

// New returns an empty store.
func New(c Config) *Store {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:     now,
		entries: make(map[string]*registry.Entry),
		similar: make(map[similarity]string),

		agents:        make(map[spiffeid.ID]registry.Agent),
		tokens:        make(map[string]registry.JoinToken),
		bundles:       make(map[spiffeid.TrustDomain]registry.FederatedBundle),
		serverBundles: make(map[string]registry.ServerBundle),
		marks:         make(map[markKey]registry.AuthorityMark),
		relationships: make(map[spiffeid.TrustDomain]registry.FederationRelationship),
	}
}

// Subscribe implements [registry.Notifier]: the channel receives a value
// after each write of one of topics through this store.
func (s *Store) Subscribe(topics registry.Topic) (changes <-chan struct{}, cancel func()) {
	return s.topics.Subscribe(uint64(topics))
}

// signal wakes the subscribers of t; it is called after the write is
// visible, without holding a lock.
func (s *Store) signal(t registry.Topic) { s.topics.Notify(uint64(t)) }

// Create implements [registry.Writer].
func (s *Store) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if err := ctx.Err(); err != nil {
		return registry.Entry{}, err
	}
	e, err := registry.PrepareCreate(e, s.now())
	if err != nil {
		return registry.Entry{}, err
	}
	key := similarityOf(e)
	s.mu.Lock()
	if _, dup := s.similar[key]; dup {
		s.mu.Unlock()
		return registry.Entry{}, fmt.Errorf("%w: %s", registry.ErrAlreadyExists, e.SPIFFEID)
	}
	if _, taken := s.entries[e.ID]; taken {
		s.mu.Unlock()
		return registry.Entry{}, idTaken(e.ID)
	}
	stored := &e
	s.entries[e.ID] = stored
	s.similar[key] = e.ID
	s.pending = append(s.pending, e.ID)
	s.appendEvent(registry.OpCreate, e.ID, nil, stored)
	s.mu.Unlock()
	s.signal(registry.TopicEntries)
	return e.Clone(), nil
}

// idTaken is the error of a create whose caller-chosen ID is taken.
func idTaken(id string) error {
	return fmt.Errorf("%w: entry ID %s is taken", registry.ErrAlreadyExists, id)
}

// Update implements [registry.Writer].
func (s *Store) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if err := ctx.Err(); err != nil {
		return registry.Entry{}, err
	}
	s.mu.Lock()
	old, ok := s.entries[e.ID]
	if !ok {
		s.mu.Unlock()
		return registry.Entry{}, registry.NotFoundf("entry %q", e.ID)
	}
	e, err := registry.PrepareUpdate(*old, e, s.now())
	if err != nil {
		s.mu.Unlock()
		return registry.Entry{}, err
	}
	oldKey, key := similarityOf(*old), similarityOf(e)
	if other, dup := s.similar[key]; dup && other != e.ID {
		s.mu.Unlock()
		return registry.Entry{}, fmt.Errorf("%w: %s", registry.ErrAlreadyExists, e.SPIFFEID)
	}
	delete(s.similar, oldKey)
	s.similar[key] = e.ID
	stored := &e
	s.entries[e.ID] = stored
	s.appendEvent(registry.OpUpdate, e.ID, old, stored)
	s.mu.Unlock()
	s.signal(registry.TopicEntries)
	return e.Clone(), nil
}

// Delete implements [registry.Writer].
func (s *Store) Delete(ctx context.Context, id string, revision int64) (registry.Entry, error) {
	if err := ctx.Err(); err != nil {
		return registry.Entry{}, err
	}
	s.mu.Lock()
	old, ok := s.entries[id]
	if !ok {
		s.mu.Unlock()
		return registry.Entry{}, registry.NotFoundf("entry %q", id)
	}
	if err := registry.CheckDelete(*old, revision); err != nil {
		s.mu.Unlock()
		return registry.Entry{}, err
	}
	delete(s.entries, id)
	delete(s.similar, similarityOf(*old))
	s.deleted++
	s.appendEvent(registry.OpDelete, id, old, nil)
	s.mu.Unlock()
	s.signal(registry.TopicEntries)
	return old.Clone(), nil
}

// appendEvent must be called with s.mu held for writing.
// similarity is the SHA-256 digest of an entry's registry.SimilarityKey:
// the key of Store.similar, 32 bytes however long the entry's IDs and
// selectors (a replica of ten thousand entries kept 1.5 MB of keys).
type similarity [sha256.Size]byte

func similarityOf(e registry.Entry) similarity { return similarityOfKey(registry.SimilarityKey(e)) }

func similarityOfKey(key string) similarity { return sha256.Sum256([]byte(key)) }

func (s *Store) appendEvent(op registry.Op, id string, before, after *registry.Entry) {
	s.events = append(s.events, registry.Event{
		Seq:     int64(len(s.events)) + 1,
		Op:      op,
		EntryID: id,
		Before:  before,
		After:   after,
	})
}

// Get implements [registry.Reader].
func (s *Store) Get(ctx context.Context, id string) (registry.Entry, error) {
	if err := ctx.Err(); err != nil {
		return registry.Entry{}, err
	}
	s.mu.RLock()
	e, ok := s.entries[id]
	s.mu.RUnlock()
	if !ok {
		return registry.Entry{}, registry.NotFoundf("entry %q", id)
	}
	return e.Clone(), nil
}

// List implements [registry.Reader]. The page token is the last ID of the
// previous page.
func (s *Store) List(ctx context.Context, f registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	s.mu.Lock() // merging the pending IDs writes
	s.merge()
	ids := s.sorted
	start := sort.SearchStrings(ids, p.Token)
	if start < len(ids) && ids[start] == p.Token {
		start++
	}
	var out []registry.Entry
	next := ""
	for _, id := range ids[start:] {
		e, ok := s.entries[id]
		if !ok || !f.Matches(*e) {
			continue
		}
		if p.Size > 0 && len(out) == p.Size {
			next = out[len(out)-1].ID
			break
		}
		out = append(out, e.Clone())
	}
	s.mu.Unlock()
	return out, next, nil
}

// merge folds pending IDs into sorted and drops deleted ones. It must be
// called with s.mu held for writing. Its cost is linear in the number of
// entries, paid once per batch of writes, not per page.
func (s *Store) merge() {
	if len(s.pending) == 0 && s.deleted == 0 {
		return
	}
	slices.Sort(s.pending)
	merged := make([]string, 0, len(s.entries))
	i, j := 0, 0
	for i < len(s.sorted) || j < len(s.pending) {
		var id string
		if j == len(s.pending) || i < len(s.sorted) && s.sorted[i] < s.pending[j] {
			id, i = s.sorted[i], i+1
		} else {
			id, j = s.pending[j], j+1
		}
		// An ID deleted and created again since the last merge is in
		// both lists (or twice in pending): keep it once.
		if _, ok := s.entries[id]; ok && (len(merged) == 0 || merged[len(merged)-1] != id) {
			merged = append(merged, id)
		}
	}
	s.sorted, s.pending, s.deleted = merged, s.pending[:0], 0
}

// Changes implements [registry.ChangeFeed].
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: memstore: change limit must be positive", registry.ErrInvalid)
	}
	after = max(after, 0)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if after >= int64(len(s.events)) {
		return nil, nil
	}
	evs := s.events[after:min(int64(len(s.events)), after+int64(limit))]
	out := make([]registry.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev
		out[i].Before = clonePtr(ev.Before)
		out[i].After = clonePtr(ev.After)
	}
	return out, nil
}

// Head implements [registry.ChangeFeed].
func (s *Store) Head(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int64(len(s.events)), nil
}

func clonePtr(e *registry.Entry) *registry.Entry {
	if e == nil {
		return nil
	}
	c := e.Clone()
	return &c
}
