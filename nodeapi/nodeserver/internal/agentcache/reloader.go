package agentcache

import (
	"context"
	"log/slog"
	"time"
)

// Signals of agent record writes are followed at once, but the reads of
// every record they cause are spaced: at least minReload apart, and
// reloadShare times as long as the last read took, so that a fleet
// renewing its SVIDs (each renewal a write, through this server or
// another) costs a bounded share of the server's time and of the
// database's, whatever its size.
const (
	minReload   = 100 * time.Millisecond
	reloadShare = 10
)

// A Reloader spaces the reads of every agent record that signals of agent
// writes cause. A signal after a quiet spell is followed at once; signals
// that come sooner than 100 ms, or ten times the last read's duration,
// after the last read are folded into one read at the end of that gap.
// The renewals of thousands of agents therefore cost a few reads a
// second, not one each. It is used by one goroutine (the server's Run).
//
// Reading only the records that changed would cost less again, but
// evictions leave no record to find: the store would have to list
// deletions too.
type Reloader struct {
	// Cache is the cache to reload.
	Cache *Cache
	// Changed is called after a read that found a change every open
	// stream must react to (see Cache.Reload).
	Changed func()
	// Log receives the failures of reads, which keep the cache as it was.
	Log *slog.Logger

	next  time.Time   // when a signal may cause a read again
	timer *time.Timer // pending read, or nil
}

// Signalled follows a signal of agent writes: it reads the records now or
// schedules a read.
func (r *Reloader) Signalled(ctx context.Context) {
	if r.timer != nil {
		return // a read is due; it will see this write too
	}
	if wait := time.Until(r.next); wait > 0 {
		r.timer = time.NewTimer(wait)
		return
	}
	r.Reload(ctx)
}

// Due returns the channel of the pending read, or nil.
func (r *Reloader) Due() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

// Reload reads the records, calls Changed if one the streams must react to
// changed, and sets when the next signal may cause a read.
func (r *Reloader) Reload(ctx context.Context) {
	r.Stop()
	start := time.Now()
	changed, err := r.Cache.Reload(ctx)
	if err != nil && ctx.Err() == nil {
		r.Log.Warn("reading the agent records failed", "err", err)
	}
	if changed {
		// Only then: waking every stream costs each a look at its
		// entries.
		r.Changed()
	}
	r.next = start.Add(max(minReload, reloadShare*time.Since(start)))
}

// Stop drops the pending read.
func (r *Reloader) Stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}
