package index

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
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
	records   map[string]int32 // entry ID -> its record in recs
	recs      slots[record]
	selectors map[attest.Selector]int32 // -> its node in nodes
	nodes     slots[selectorNode]
	kinds     map[selectorKind]int  // distinct selectors of each type and kind
	parents   map[spiffeid.ID]int32 // -> its node in pnodes
	pnodes    slots[parentNode]
	// lastParent is the parent node put used last, or -1: entries come
	// grouped by parent, and comparing an ID costs less than hashing it.
	lastParent int32
	now        func() time.Time
	expiring   expiryHeap                // served entries that expire, soonest first; stale items skipped
	expired    map[string]registry.Entry // expired entries the store still holds
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

// record is one indexed entry. Records and nodes live in [slots] and name
// each other by slot number, not by pointer: in an index of a million
// entries, the garbage collector then has a few large objects to scan
// instead of millions of small ones linked by pointers. The fields of the
// entry that most entries leave empty are kept in extra, nil when they
// are all empty, and its times as stamps when that keeps them exactly.
// Its selectors are kept, interned, in sels; its parent ID is its
// parent's. The record is listed under one of its selectors only, its
// anchor: the one fewest entries used when it was inserted.
type record struct {
	id                       string
	spiffeID                 spiffeid.ID
	revision                 int64
	x509TTL, jwtTTL          time.Duration
	created, updated, expiry stamp
	extra                    *extra
	sels                     []int32 // its selectors' nodes
	anchor                   int32   // a node, or -1 for an entry without selectors
	apos                     int32   // position in anchor's anchored
	parent                   int32   // its parent's node
	ppos                     int32   // position in parent's children
	downstream               bool
}

// extra holds the fields of an entry that most entries leave empty, and
// its times when stamps would not keep them exactly.
type extra struct {
	dnsNames                 []string
	federatesWith            []spiffeid.TrustDomain
	hint                     string
	times                    bool // created, updated and expiry hold the times, which stamps would not keep exactly
	created, updated, expiry time.Time
}

// stamp is a UTC time without a monotonic reading, in 12 bytes instead of
// time.Time's 24 and its pointer.
type stamp struct {
	sec  int64
	nsec int32
}

// stampOf returns t as a stamp, and whether the stamp gives t back exactly.
func stampOf(t time.Time) (stamp, bool) {
	s := stamp{t.Unix(), int32(t.Nanosecond())}
	return s, s.time() == t
}

func (s stamp) time() time.Time { return time.Unix(s.sec, int64(s.nsec)).UTC() }

// selectorNode is one interned selector.
type selectorNode struct {
	sel      attest.Selector
	uses     int     // records that have this selector
	anchored []int32 // records anchored on this selector
}

type parentNode struct {
	id       spiffeid.ID
	children []int32 // records
}

// slots is a growable array of T in chunks that never move, whose freed
// slots are reused, addressed by int32. It holds at most 1<<31 values: an
// index of that many entries would need hundreds of gigabytes.
type slots[T any] struct {
	chunks [][]T
	n      int32 // slots handed out, free ones included
	free   []int32
}

const chunkBits = 10 // 1,024 slots a chunk

func (s *slots[T]) at(i int32) *T { return &s.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

// alloc returns a free slot, which holds T's zero value.
func (s *slots[T]) alloc() int32 {
	if k := len(s.free); k > 0 {
		i := s.free[k-1]
		s.free = s.free[:k-1]
		return i
	}
	if int(s.n)>>chunkBits == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, 1<<chunkBits))
	}
	s.n++
	return s.n - 1
}

// release zeroes slot i, so that it holds nothing alive, and frees it.
func (s *slots[T]) release(i int32) {
	var zero T
	*s.at(i) = zero
	s.free = append(s.free, i)
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
		src:        src,
		conf:       c,
		records:    make(map[string]int32),
		selectors:  make(map[attest.Selector]int32),
		kinds:      make(map[selectorKind]int),
		parents:    make(map[spiffeid.ID]int32),
		lastParent: -1,
		now:        c.Now,
		expired:    make(map[string]registry.Entry),
	}
	if x.now == nil {
		x.now = time.Now
	}
	head, err := src.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: reading change feed head: %w", err)
	}
	presize := 0
	if c, ok := src.(Counter); ok {
		n, err := c.CountEntries(ctx)
		if err != nil {
			return nil, fmt.Errorf("index: counting entries: %w", err)
		}
		presize = min(max(n, 0), maxPresize)
		x.records = make(map[string]int32, presize)
		// Many entries have a selector of their own (a pod, a service
		// account), so the table of selectors is sized for one each too:
		// growing it was a quarter of the inserts' time. Where entries
		// share their selectors instead, the table is copied to its size
		// after the read, which then costs little since it is small.
		x.selectors = make(map[attest.Selector]int32, presize)
	}
	if err := x.load(ctx); err != nil {
		return nil, err
	}
	if len(x.selectors) < presize/4 {
		x.selectors = maps.Collect(maps.All(x.selectors))
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
	old, ok := x.records[ev.EntryID]
	gone, isExpired := x.expired[ev.EntryID]
	switch {
	case ev.After != nil:
		if ok && x.recs.at(old).revision >= ev.After.Revision || isExpired && gone.Revision >= ev.After.Revision {
			return // the list that built the index already saw this change
		}
		x.put(*ev.After)
	case ok:
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
		if !x.current(it) {
			continue // removed or replaced since it was pushed
		}
		r := x.records[it.id]
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
		if x.current(it) {
			live = append(live, it)
		}
	}
	clear(x.expiring[len(live):])
	x.expiring = live
	heap.Init(&x.expiring)
}

// current reports whether it is of the entry revision in the index. It
// must be called with x.mu held.
func (x *Index) current(it expiryItem) bool {
	r, ok := x.records[it.id]
	return ok && x.recs.at(r).revision == it.revision
}

// NextExpiry returns when the soonest expiry of a served entry falls, or
// the zero time when no served entry has an expiry. Callers that follow the
// index run [Index.Sync] then, so that the entry leaves at its expiry.
func (x *Index) NextExpiry() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.expiring) > 0 {
		it := x.expiring[0]
		if x.current(it) {
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
	if old, ok := x.records[e.ID]; ok {
		x.remove(old)
	}
	delete(x.expired, e.ID)
	if registry.Reserved(e.SPIFFEID) {
		return
	}
	if !e.ExpiresAt.IsZero() && e.Expired(x.now()) {
		x.expired[e.ID] = e.Clone()
		return
	}
	if !e.ExpiresAt.IsZero() {
		if len(x.expiring) > 64 && len(x.expiring) > 2*len(x.records) {
			x.compactExpiring()
		}
		heap.Push(&x.expiring, expiryItem{at: e.ExpiresAt, id: e.ID, revision: e.Revision})
	}
	ri := x.recs.alloc()
	r := x.recs.at(ri) // chunks never move: r stays valid while slots are added
	*r = record{
		id:         e.ID,
		spiffeID:   e.SPIFFEID,
		revision:   e.Revision,
		x509TTL:    e.X509SVIDTTL,
		jwtTTL:     e.JWTSVIDTTL,
		downstream: e.Downstream,
		sels:       make([]int32, len(e.Selectors)),
		anchor:     -1,
	}
	var c, u, ex bool
	r.created, c = stampOf(e.CreatedAt)
	r.updated, u = stampOf(e.UpdatedAt)
	r.expiry, ex = stampOf(e.ExpiresAt)
	if exact := c && u && ex; !exact || e.DNSNames != nil || e.FederatesWith != nil || e.Hint != "" {
		r.extra = &extra{
			dnsNames:      slices.Clone(e.DNSNames),
			federatesWith: slices.Clone(e.FederatesWith),
			hint:          e.Hint,
		}
		if !exact {
			r.extra.times = true
			r.extra.created, r.extra.updated, r.extra.expiry = e.CreatedAt, e.UpdatedAt, e.ExpiresAt
		}
	}
	var anchorUses int
	for i, s := range e.Selectors {
		ni, ok := x.selectors[s]
		if !ok {
			ni = x.nodes.alloc()
			x.nodes.at(ni).sel = s
			x.selectors[s] = ni
			k := selectorKind{s.Type, s.Kind()}
			if x.kinds[k] == 0 {
				// Its own copy: the kind is a piece of the value, which
				// may be long and may go before the kind does.
				k.kind = strings.Clone(k.kind)
			}
			x.kinds[k]++
		}
		n := x.nodes.at(ni)
		n.uses++
		r.sels[i] = ni
		if r.anchor < 0 || n.uses < anchorUses {
			r.anchor, anchorUses = ni, n.uses
		}
	}
	if r.anchor >= 0 {
		a := x.nodes.at(r.anchor)
		r.apos = int32(len(a.anchored))
		a.anchored = append(a.anchored, ri)
	}
	pi := x.lastParent
	if pi < 0 || x.pnodes.at(pi).id != e.ParentID {
		var ok bool
		if pi, ok = x.parents[e.ParentID]; !ok {
			pi = x.pnodes.alloc()
			x.pnodes.at(pi).id = e.ParentID
			x.parents[e.ParentID] = pi
		}
	}
	x.lastParent = pi
	p := x.pnodes.at(pi)
	r.parent, r.ppos = pi, int32(len(p.children))
	p.children = append(p.children, ri)
	x.records[e.ID] = ri
}

// remove must be called with x.mu held for writing. It swaps the record with
// the last one of its anchor's and its parent's lists, so it costs
// O(number of selectors).
func (x *Index) remove(ri int32) {
	r := x.recs.at(ri)
	if r.anchor >= 0 {
		n := x.nodes.at(r.anchor)
		last := n.anchored[len(n.anchored)-1]
		n.anchored[r.apos], x.recs.at(last).apos = last, r.apos
		n.anchored = n.anchored[:len(n.anchored)-1]
	}
	for _, ni := range r.sels {
		n := x.nodes.at(ni)
		if n.uses--; n.uses == 0 {
			delete(x.selectors, n.sel)
			k := selectorKind{n.sel.Type, n.sel.Kind()}
			if x.kinds[k]--; x.kinds[k] == 0 {
				delete(x.kinds, k)
			}
			x.nodes.release(ni)
		}
	}
	p := x.pnodes.at(r.parent)
	lastChild := p.children[len(p.children)-1]
	p.children[r.ppos], x.recs.at(lastChild).ppos = lastChild, r.ppos
	p.children = p.children[:len(p.children)-1]
	if len(p.children) == 0 {
		delete(x.parents, p.id)
		x.pnodes.release(r.parent)
		if x.lastParent == r.parent {
			x.lastParent = -1
		}
	}
	delete(x.records, r.id)
	x.recs.release(ri)
}

// CountByParent returns how many indexed entries have the parent ID
// parentID: entries in service, so not of a reserved SPIFFE ID, and not
// expired at Config.Now, even before [Index.Sync] takes the expired out of
// service. It costs one map lookup, and, when entries have expired since
// the last Sync, a look at each of them, found without a walk of the
// others (package launch counts the live launches with it, for each
// launch).
func (x *Index) CountByParent(parentID spiffeid.ID) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p, ok := x.parents[parentID]
	if !ok {
		return 0
	}
	return len(x.pnodes.at(p).children) - x.dueChildren(0, p, x.now())
}

// dueChildren counts the entries of parent node p that are in service but
// expired at now, with an item in the subtree of the queue of expiries
// rooted at i: the items due by now are the ones at the top of the heap,
// whose children are due no sooner than they, so the walk goes no deeper
// than the first item not due. Stale items (of an entry removed or updated
// since they were pushed) count for nothing. It must be called with x.mu
// held.
func (x *Index) dueChildren(i int, p int32, now time.Time) int {
	if i >= len(x.expiring) || now.Before(x.expiring[i].at) {
		return 0
	}
	n := x.dueChildren(2*i+1, p, now) + x.dueChildren(2*i+2, p, now)
	it := x.expiring[i]
	if ri, ok := x.records[it.id]; ok {
		if r := x.recs.at(ri); r.revision == it.revision && r.parent == p {
			n++
		}
	}
	return n
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
func (x *Index) matching(selectors []attest.Selector) []int32 {
	// Every applicable entry is anchored on one of the caller's selectors;
	// deduplicating them keeps each list from being walked twice.
	have := make([]int32, 0, len(selectors))
	for _, s := range selectors {
		if n, ok := x.selectors[s]; ok && !slices.Contains(have, n) {
			have = append(have, n)
		}
	}
	var out []int32
	for _, n := range have {
		for _, r := range x.nodes.at(n).anchored {
			if containsAll(have, x.recs.at(r).sels) {
				out = append(out, r)
			}
		}
	}
	return out
}

// containsAll reports whether every selector of an entry is among the
// caller's. This is the rule that keeps an entry needing a selector the
// caller lacks from being granted.
func containsAll(have, need []int32) bool {
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
		for _, ri := range x.matching(nodeSelectors) {
			if r := x.recs.at(ri); x.pnodes.at(r.parent).id == x.conf.ServerID {
				frontier = append(frontier, r.spiffeID)
			}
		}
	}
	visited := make(map[spiffeid.ID]struct{}, len(frontier))
	var out []int32
	for len(frontier) > 0 {
		id := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		if _, seen := visited[id]; seen {
			continue // cycles in parent links end here
		}
		visited[id] = struct{}{}
		p, ok := x.parents[id]
		if !ok {
			continue
		}
		for _, r := range x.pnodes.at(p).children {
			out = append(out, r)
			frontier = append(frontier, x.recs.at(r).spiffeID)
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
	rs := make([]int32, 0, len(x.records))
	for _, r := range x.records {
		rs = append(rs, r)
	}
	return x.output(rs)
}

// output copies records out, sorted by ID and without duplicates. It must be
// called with x.mu held.
func (x *Index) output(rs []int32) []registry.Entry {
	slices.SortFunc(rs, func(a, b int32) int { return cmp.Compare(x.recs.at(a).id, x.recs.at(b).id) })
	rs = slices.Compact(rs)
	out := make([]registry.Entry, len(rs))
	for i, r := range rs {
		out[i] = x.entryOf(r)
	}
	return out
}

// entryOf returns the entry of a record, owned by the caller.
func (x *Index) entryOf(ri int32) registry.Entry {
	r := x.recs.at(ri)
	e := registry.Entry{
		ID:          r.id,
		SPIFFEID:    r.spiffeID,
		ParentID:    x.pnodes.at(r.parent).id,
		X509SVIDTTL: r.x509TTL,
		JWTSVIDTTL:  r.jwtTTL,
		Downstream:  r.downstream,
		Revision:    r.revision,
		CreatedAt:   r.created.time(),
		UpdatedAt:   r.updated.time(),
		ExpiresAt:   r.expiry.time(),
		Selectors:   make([]attest.Selector, len(r.sels)),
	}
	if ex := r.extra; ex != nil {
		e.DNSNames = slices.Clone(ex.dnsNames)
		e.FederatesWith = slices.Clone(ex.federatesWith)
		e.Hint = ex.hint
		if ex.times {
			e.CreatedAt, e.UpdatedAt, e.ExpiresAt = ex.created, ex.updated, ex.expiry
		}
	}
	for j, n := range r.sels {
		e.Selectors[j] = x.nodes.at(n).sel
	}
	return e
}
