package index

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Source is what an [Index] reads: a store's entries and its change feed.
// Every [registry.Store] is a Source.
type Source interface {
	registry.Reader
	registry.ChangeFeed
}

// A Scanner is a [Source] that reads every entry in one pass, faster than
// paging through List; [New] reads a Scanner so. The SQL store is one.
type Scanner interface {
	// ScanEntries calls yield with every entry, in any order, from the
	// calling goroutine, and returns the first error, yield's included,
	// after which it calls yield no more.
	ScanEntries(ctx context.Context, yield func(registry.Entry) error) error
}

// A Counter is a [Source] that tells how many entries it holds: [New] then
// sizes its table of entries once, instead of growing it while it reads
// them. The SQL store is one.
type Counter interface {
	CountEntries(ctx context.Context) (int, error)
}

// maxPresize bounds the size New takes from a [Counter]: past it, the
// table grows as entries arrive.
const maxPresize = 1 << 21

// Config configures an [Index].
type Config struct {
	// ServerID is the SPIFFE ID of the server. Entries whose parent is
	// ServerID are node alias entries: an agent whose node selectors match
	// one also receives the entries parented by the alias's SPIFFE ID (see
	// [Index.ForAgent]). Zero means there are no node aliases.
	ServerID spiffeid.ID
	// PageSize is the number of entries or events read per call to the
	// source; zero means 10,000.
	PageSize int
	// PollInterval is how often [Index.Run] reads the change feed when the
	// source has not signalled a change; zero means 30 seconds for a source
	// that is a [registry.Notifier] (the poll is only a safety net) and one
	// second for another.
	PollInterval time.Duration
	// Now is the clock against which entries expire ([registry.Entry.ExpiresAt]);
	// nil means time.Now.
	Now func() time.Time
	// OnExpire, if not nil, is called with each entry that leaves the
	// index at its expiry, after Sync released the index's lock, from the
	// goroutine that called Sync: for a log line. An entry already expired
	// when it is read or written is left out without a call.
	OnExpire func(registry.Entry)
	// OnChange, if not nil, is called with each change of the source's
	// feed that Sync applies to the index, after Sync released the
	// index's lock, from the goroutine that called Sync: so that a caller
	// can tell who the change concerns (ev.Before and ev.After name the
	// entry's parent before and after) rather than assume everyone. By
	// then, the index holds the change.
	OnChange func(registry.Event)
}

// Index is an in-memory index of registration entries. It is safe for
// concurrent use: queries share a read lock, and applying changes takes the
// write lock briefly per batch.
//
// It leaves out entries whose SPIFFE ID is [registry.Reserved] (the
// server's and agents' namespace): a store may still hold one written
// before the namespace was reserved, and it must reach no workload.
//
// It also leaves out expired entries ([registry.Entry.Expired]): an entry
// is served until its expiry, and from then on it is in [Index.Expired]
// only, until the store deletes it (or an update moves its expiry). Entries
// leave at their expiry when [Index.Sync] runs (which counts each as a
// change applied); [Index.NextExpiry] tells callers when to run it.
type Index struct {
	src  Source
	conf Config

	mu        sync.RWMutex
	seq       int64
	records   map[string]*record
	selectors map[attest.Selector]*selectorNode
	kinds     map[selectorKind]int // distinct selectors of each type and kind
	parents   map[spiffeid.ID]*parentNode
	now       func() time.Time
	expiring  expiryHeap                // served entries that expire, soonest first; stale items skipped
	expired   map[string]registry.Entry // expired entries the store still holds
}

// expiryItem is an entry revision that expires at a time.
type expiryItem struct {
	at       time.Time
	id       string
	revision int64
}

// expiryHeap is a min-heap of expiryItems by time.
type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// selectorKind is a selector's type and kind (see attest.Selector.Kind).
type selectorKind struct{ typ, kind string }

// record is one indexed entry. Its entry has nil Selectors: they are kept,
// interned, in sels. The record is listed under one of its selectors only,
// its anchor: the one fewest entries used when it was inserted.
type record struct {
	entry  registry.Entry
	sels   []*selectorNode
	anchor *selectorNode
	apos   int32 // position in anchor.anchored
	parent *parentNode
	ppos   int32 // position in parent.children
}

// selectorNode is one interned selector.
type selectorNode struct {
	sel      attest.Selector
	uses     int       // records that have this selector
	anchored []*record // records anchored on this selector
}

type parentNode struct {
	id       spiffeid.ID
	children []*record
}

// New builds an index of every entry in src: it reads the feed's head, reads
// all entries (in one pass from a [Scanner], otherwise page by page), then
// applies the changes made meanwhile. ctx bounds the build only.
func New(ctx context.Context, src Source, c Config) (*Index, error) {
	if c.PageSize < 0 || c.PollInterval < 0 {
		return nil, errors.New("index: negative page size or poll interval")
	}
	if c.PageSize == 0 {
		c.PageSize = 10000
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
		if _, ok := src.(registry.Notifier); ok {
			c.PollInterval = 30 * time.Second
		}
	}
	x := &Index{
		src:       src,
		conf:      c,
		records:   make(map[string]*record),
		selectors: make(map[attest.Selector]*selectorNode),
		kinds:     make(map[selectorKind]int),
		parents:   make(map[spiffeid.ID]*parentNode),
		now:       c.Now,
		expired:   make(map[string]registry.Entry),
	}
	if x.now == nil {
		x.now = time.Now
	}
	head, err := src.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: reading change feed head: %w", err)
	}
	if c, ok := src.(Counter); ok {
		n, err := c.CountEntries(ctx)
		if err != nil {
			return nil, fmt.Errorf("index: counting entries: %w", err)
		}
		x.records = make(map[string]*record, min(max(n, 0), maxPresize))
	}
	if err := x.load(ctx); err != nil {
		return nil, err
	}
	x.seq = head
	// Entries read above may be newer than head; applying an event checks
	// revisions, so replaying changes the list already saw is harmless.
	if _, err := x.Sync(ctx); err != nil {
		return nil, err
	}
	return x, nil
}

// load reads every entry of the source: in one pass if it is a [Scanner],
// otherwise page by page.
func (x *Index) load(ctx context.Context) error {
	x.mu.Lock() // the index is not shared yet; put wants the lock
	defer x.mu.Unlock()
	if sc, ok := x.src.(Scanner); ok {
		if err := sc.ScanEntries(ctx, func(e registry.Entry) error { x.put(e); return nil }); err != nil {
			return fmt.Errorf("index: reading entries: %w", err)
		}
		return nil
	}
	token := ""
	for {
		page, next, err := x.src.List(ctx, registry.Filter{}, registry.Page{Token: token, Size: x.conf.PageSize})
		if err != nil {
			return fmt.Errorf("index: listing entries: %w", err)
		}
		for i := range page {
			x.put(page[i])
		}
		if next == "" {
			return nil
		}
		token = next
	}
}

// Sync applies every change the source has recorded since the last one
// applied, and returns how many it applied.
//
// It also takes out of service the entries whose expiry has come, counted
// among the changes applied; it does so first, so that a failed read of
// the source does not keep an expired entry in service.
func (x *Index) Sync(ctx context.Context) (int, error) {
	x.mu.Lock()
	gone := x.expire(x.now())
	x.mu.Unlock()
	x.tellExpired(gone)
	n := len(gone)
	for {
		x.mu.RLock()
		after := x.seq
		x.mu.RUnlock()
		evs, err := x.src.Changes(ctx, after, x.conf.PageSize)
		if err != nil {
			return n, fmt.Errorf("index: reading changes: %w", err)
		}
		if len(evs) == 0 {
			x.mu.Lock()
			gone = x.expire(x.now())
			x.mu.Unlock()
			x.tellExpired(gone)
			return n + len(gone), nil
		}
		var applied []registry.Event
		x.mu.Lock()
		for _, ev := range evs {
			// Concurrent Syncs may fetch the same events; apply each once.
			if ev.Seq > x.seq {
				x.apply(ev)
				n++
				if x.conf.OnChange != nil {
					applied = append(applied, ev)
				}
			}
		}
		x.mu.Unlock()
		for _, ev := range applied {
			x.conf.OnChange(ev)
		}
	}
}

// Run keeps the index up to date until ctx is done, then returns ctx.Err().
// It syncs once at start, then when the source signals a change of entries,
// if it is a [registry.Notifier], and every PollInterval. A failed sync is
// retried at the next tick.
func (x *Index) Run(ctx context.Context) error {
	var notify <-chan struct{}
	if n, ok := x.src.(registry.Notifier); ok {
		var cancel func()
		notify, cancel = n.Subscribe(registry.TopicEntries)
		defer cancel()
	}
	tick := time.NewTicker(x.conf.PollInterval)
	defer tick.Stop()
	for {
		// The first sync catches up with the writes made before the
		// subscription.
		_, _ = x.Sync(ctx) // an error leaves the index consistent at an older sequence
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-notify:
		case <-tick.C:
		}
	}
}

// Seq returns the sequence number of the last change applied.
func (x *Index) Seq() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.seq
}

// Len returns the number of entries in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.records)
}

// apply must be called with x.mu held for writing.
func (x *Index) apply(ev registry.Event) {
	x.seq = ev.Seq
	old := x.records[ev.EntryID]
	gone, isExpired := x.expired[ev.EntryID]
	switch {
	case ev.After != nil:
		if old != nil && old.entry.Revision >= ev.After.Revision || isExpired && gone.Revision >= ev.After.Revision {
			return // the list that built the index already saw this change
		}
		x.put(*ev.After)
	case old != nil:
		x.remove(old)
	default:
		delete(x.expired, ev.EntryID)
	}
}

// expire moves the entries that have expired at now out of service, into
// x.expired, and returns them. It must be called with x.mu held for
// writing.
func (x *Index) expire(now time.Time) []registry.Entry {
	var gone []registry.Entry
	for len(x.expiring) > 0 && !now.Before(x.expiring[0].at) {
		it := heap.Pop(&x.expiring).(expiryItem)
		r := x.records[it.id]
		if r == nil || r.entry.Revision != it.revision {
			continue // removed or replaced since it was pushed
		}
		e := x.entryOf(r)
		x.expired[it.id] = e
		x.remove(r)
		gone = append(gone, e)
	}
	return gone
}

// tellExpired calls Config.OnExpire with each entry of gone, which are
// copies; it must be called without x.mu.
func (x *Index) tellExpired(gone []registry.Entry) {
	if x.conf.OnExpire == nil {
		return
	}
	for _, e := range gone {
		x.conf.OnExpire(e.Clone())
	}
}

// compactExpiring drops the items of entries removed or replaced since they
// were pushed, so that the heap of an index whose entries are rewritten
// often stays the size of its live entries. It must be called with x.mu
// held for writing.
func (x *Index) compactExpiring() {
	live := x.expiring[:0]
	for _, it := range x.expiring {
		if r := x.records[it.id]; r != nil && r.entry.Revision == it.revision {
			live = append(live, it)
		}
	}
	clear(x.expiring[len(live):])
	x.expiring = live
	heap.Init(&x.expiring)
}

// NextExpiry returns when the soonest expiry of a served entry falls, or
// the zero time when no served entry has an expiry. Callers that follow the
// index run [Index.Sync] then, so that the entry leaves at its expiry.
func (x *Index) NextExpiry() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.expiring) > 0 {
		it := x.expiring[0]
		if r := x.records[it.id]; r != nil && r.entry.Revision == it.revision {
			return it.at
		}
		heap.Pop(&x.expiring) // stale
	}
	return time.Time{}
}

// Expired returns the entries the store holds whose expiry has passed
// (as of the last [Index.Sync]), which the index no longer serves, sorted by
// entry ID and owned by the caller: what a pruner deletes.
func (x *Index) Expired() []registry.Entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]registry.Entry, 0, len(x.expired))
	for _, e := range x.expired {
		out = append(out, e.Clone())
	}
	slices.SortFunc(out, func(a, b registry.Entry) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// put inserts or replaces an entry. It leaves out an entry whose SPIFFE ID
// is [registry.Reserved]: stores no longer write one, but may still hold
// one written before, and no workload may receive the server's or an
// agent's identity. It must be called with x.mu held for writing.
func (x *Index) put(e registry.Entry) {
	if old := x.records[e.ID]; old != nil {
		x.remove(old)
	}
	delete(x.expired, e.ID)
	if registry.Reserved(e.SPIFFEID) {
		return
	}
	if e.Expired(x.now()) {
		x.expired[e.ID] = e.Clone()
		return
	}
	if !e.ExpiresAt.IsZero() {
		if len(x.expiring) > 64 && len(x.expiring) > 2*len(x.records) {
			x.compactExpiring()
		}
		heap.Push(&x.expiring, expiryItem{at: e.ExpiresAt, id: e.ID, revision: e.Revision})
	}
	r := &record{entry: e, sels: make([]*selectorNode, len(e.Selectors))}
	r.entry.Selectors = nil
	r.entry.DNSNames = slices.Clone(e.DNSNames)
	r.entry.FederatesWith = slices.Clone(e.FederatesWith)
	for i, s := range e.Selectors {
		n := x.selectors[s]
		if n == nil {
			n = &selectorNode{sel: s}
			x.selectors[s] = n
			k := selectorKind{s.Type, s.Kind()}
			if x.kinds[k] == 0 {
				// Its own copy: the kind is a piece of the value, which
				// may be long and may go before the kind does.
				k.kind = strings.Clone(k.kind)
			}
			x.kinds[k]++
		}
		n.uses++
		r.sels[i] = n
		if r.anchor == nil || n.uses < r.anchor.uses {
			r.anchor = n
		}
	}
	r.apos = int32(len(r.anchor.anchored))
	r.anchor.anchored = append(r.anchor.anchored, r)
	p := x.parents[e.ParentID]
	if p == nil {
		p = &parentNode{id: e.ParentID}
		x.parents[e.ParentID] = p
	}
	r.entry.ParentID = p.id // share one copy of the string
	r.parent, r.ppos = p, int32(len(p.children))
	p.children = append(p.children, r)
	x.records[e.ID] = r
}

// remove must be called with x.mu held for writing. It swaps the record with
// the last one of its anchor's and its parent's lists, so it costs
// O(number of selectors).
func (x *Index) remove(r *record) {
	n := r.anchor
	last := n.anchored[len(n.anchored)-1]
	n.anchored[r.apos], last.apos = last, r.apos
	n.anchored[len(n.anchored)-1] = nil
	n.anchored = n.anchored[:len(n.anchored)-1]
	for _, n := range r.sels {
		if n.uses--; n.uses == 0 {
			delete(x.selectors, n.sel)
			k := selectorKind{n.sel.Type, n.sel.Kind()}
			if x.kinds[k]--; x.kinds[k] == 0 {
				delete(x.kinds, k)
			}
		}
	}
	p := r.parent
	lastChild := p.children[len(p.children)-1]
	p.children[r.ppos], lastChild.ppos = lastChild, r.ppos
	p.children[len(p.children)-1] = nil
	p.children = p.children[:len(p.children)-1]
	if len(p.children) == 0 {
		delete(x.parents, p.id)
	}
	delete(x.records, r.entry.ID)
}

// Uses reports whether some indexed entry has a selector of type typ and
// kind kind (see attest.Selector.Kind): "unix", "sha256" for an entry that
// selects an executable's hash. It costs one map lookup, for
// attest.Workload.Needed.
func (x *Index) Uses(typ, kind string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.kinds[selectorKind{typ, kind}] > 0
}

// ForWorkload returns the entries that apply to a workload attested with the
// given selectors: those whose selectors are all among them. Duplicates in
// selectors are ignored. The result is sorted by entry ID and owned by the
// caller. The caller's strings are never retained.
func (x *Index) ForWorkload(selectors []attest.Selector) []registry.Entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.output(x.matching(selectors))
}

// matching must be called with x.mu held.
func (x *Index) matching(selectors []attest.Selector) []*record {
	// Every applicable entry is anchored on one of the caller's selectors;
	// deduplicating them keeps each list from being walked twice.
	have := make([]*selectorNode, 0, len(selectors))
	for _, s := range selectors {
		if n := x.selectors[s]; n != nil && !slices.Contains(have, n) {
			have = append(have, n)
		}
	}
	var out []*record
	for _, n := range have {
		for _, r := range n.anchored {
			if containsAll(have, r.sels) {
				out = append(out, r)
			}
		}
	}
	return out
}

// containsAll reports whether every selector of an entry is among the
// caller's. This is the rule that keeps an entry needing a selector the
// caller lacks from being granted.
func containsAll(have, need []*selectorNode) bool {
	for _, n := range need {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

// ForAgent returns the entries an agent may obtain and serve: the entries
// whose parent is agentID; if [Config.ServerID] is set, the entries whose
// parent is the SPIFFE ID of a node alias entry (an entry parented by the
// server) that applies to nodeSelectors; and, recursively, the entries whose
// parent is the SPIFFE ID of an entry already returned. Alias entries
// themselves are not returned. The result is sorted by entry ID and owned by
// the caller.
func (x *Index) ForAgent(agentID spiffeid.ID, nodeSelectors []attest.Selector) []registry.Entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	frontier := []spiffeid.ID{agentID}
	if !x.conf.ServerID.IsZero() {
		for _, r := range x.matching(nodeSelectors) {
			if r.entry.ParentID == x.conf.ServerID {
				frontier = append(frontier, r.entry.SPIFFEID)
			}
		}
	}
	visited := make(map[spiffeid.ID]struct{}, len(frontier))
	var out []*record
	for len(frontier) > 0 {
		id := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		if _, seen := visited[id]; seen {
			continue // cycles in parent links end here
		}
		visited[id] = struct{}{}
		p := x.parents[id]
		if p == nil {
			continue
		}
		for _, r := range p.children {
			out = append(out, r)
			frontier = append(frontier, r.entry.SPIFFEID)
		}
	}
	return x.output(out)
}

// All returns every entry of the index (every entry of the registry but
// those with a reserved SPIFFE ID), sorted by entry ID and owned by the
// caller.
func (x *Index) All() []registry.Entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	rs := make([]*record, 0, len(x.records))
	for _, r := range x.records {
		rs = append(rs, r)
	}
	return x.output(rs)
}

// output copies records out, sorted by ID and without duplicates. It must be
// called with x.mu held.
func (x *Index) output(rs []*record) []registry.Entry {
	slices.SortFunc(rs, func(a, b *record) int { return cmp.Compare(a.entry.ID, b.entry.ID) })
	rs = slices.Compact(rs)
	out := make([]registry.Entry, len(rs))
	for i, r := range rs {
		out[i] = x.entryOf(r)
	}
	return out
}

// entryOf returns a copy of the record's entry, with its selectors.
func (x *Index) entryOf(r *record) registry.Entry {
	e := r.entry.Clone()
	e.Selectors = make([]attest.Selector, len(r.sels))
	for j, n := range r.sels {
		e.Selectors[j] = n.sel
	}
	return e
}
