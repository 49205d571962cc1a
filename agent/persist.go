package agent

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/spiffekit/spiffekit/agent/internal/workloadfile"
)

// workloadsSaveInterval is how often the agent looks whether to write its
// workloads file: once what it would hold has changed and then stayed the
// same for an interval, or, while it keeps changing (a sync of thousands
// of entries, minted over many seconds), once every
// workloadsMaxUnsaved intervals; a change of the taints is written sooner
// (taintSaveDelay). Writing ten thousand entries with their
// SVIDs costs some 60 ms and half a megabyte of memory, and, after a write
// of that size, a collection that returns the free heap to the system:
// soon after a burst of changes has settled, so that the agent's memory
// settles with it. A crash loses at most the changes since the last
// write, which the agent gets again from a server; a change of the
// taints, which an agent restarted with every server away cannot get
// again, is written within taintSaveDelay. A variable for tests.
var workloadsSaveInterval = 2 * time.Second

// releaseAfterSave is the size of a workloads file from which the agent
// returns its free heap to the system once the file is written: a file of
// a thousand entries or more. A variable for tests.
var releaseAfterSave int64 = 1 << 20

// workloadsMaxUnsaved bounds, in intervals, how long changes wait to be
// written while they go on.
const workloadsMaxUnsaved = 6

// taintSaveDelay is how long after the set of tainted CAs and keys
// changed the agent writes its workloads file, rather than at its next
// look (see workloadsSaveInterval): a taint lost in a crash would let an
// agent restarted with every server away serve again what the tainted CA
// or key signed. The changes of that time (a taint of a CA, then one of a
// JWT key) cost one write.
const taintSaveDelay = 100 * time.Millisecond

// workloadsState says what the workloads file would hold: it changes
// when the entries, the SVIDs, the bundles or the taints do; its field
// taints, with the taints alone.
type workloadsState struct {
	svids, wits, entries, trust, taints uint64
}

func (a *Agent) workloadsState() workloadsState {
	return workloadsState{svids: a.iss.X509SVIDsVersion(), wits: a.iss.WITSVIDsVersion(), entries: uint64(a.store.Version()),
		trust: a.trust.Version(), taints: a.trust.TaintsVersion()}
}

// restoreWorkloads serves again what the agent held when it stopped: the
// entries, their X509-SVIDs and the federated bundles saved in the data
// directory, when the agent reuses the saved agent SVID they were saved
// with. The tainted CAs and keys saved with them are the trust's again
// before the SVIDs are restored, so that none of what they signed is
// served (see issuer.Restore), and the agent renews its own SVID at once
// if it is one; the server's first sync replaces them. A file that cannot be read safely, or whose content does not hold
// together, is refused with an error in the log, and the agent starts
// without it, as an agent that saved nothing. ctx bounds the reading.
func (a *Agent) restoreWorkloads(ctx context.Context) {
	start := time.Now()
	w, err := workloadfile.Load(a.cfg.DataDir, a.cfg.TrustDomain)
	upgrade := false
	if errors.Is(err, workloadfile.ErrNotFound) {
		w, upgrade, err = a.loadOldWorkloads()
	}
	switch {
	case errors.Is(err, workloadfile.ErrNotFound):
		return
	case err != nil:
		a.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		return
	case w.Agent != a.svid.ID:
		a.log.Warn("ignoring the saved workload SVIDs: they were saved by another agent", "saved_by", w.Agent.String())
		return
	}
	if err := a.store.Replicate(ctx, w.Entries, nil); err != nil {
		a.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		return
	}
	if err := a.iss.Sync(ctx); err != nil {
		a.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		a.forgetRestored(ctx)
		return
	}
	a.trust.SetTaintedKeys(w.Taints.JWT, w.Taints.WIT)
	a.trust.Set(nil, true, w.Federated, w.Taints.CAs, nil)
	res, err := a.iss.Restore(w.SVIDs)
	if err != nil {
		a.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		a.forgetTrust()
		a.forgetRestored(ctx)
		return
	}
	attrs := []any{"entries", len(w.Entries), "svids", res.Restored, "expired", res.Expired, "stale", res.Stale}
	if res.Tainted > 0 {
		attrs = append(attrs, "tainted", res.Tainted)
	}
	if a.cfg.WITSVIDs {
		// Restored only where they may be served.
		wres, err := a.iss.RestoreWITSVIDs(w.WITs)
		if err != nil {
			a.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
			a.forgetTrust()
			a.forgetRestored(ctx)
			return
		}
		attrs = append(attrs, "wit_svids", wres.Restored, "wit_expired", wres.Expired,
			"wit_untrusted", wres.Untrusted, "wit_stale", wres.Stale)
		if wres.Tainted > 0 {
			attrs = append(attrs, "wit_tainted", wres.Tainted)
		}
	}
	a.restored = true
	a.log.Info("serving the saved workload SVIDs until the agent syncs with a server",
		append(attrs, "took", time.Since(start).Round(time.Millisecond))...)
	if upgrade {
		a.upgradeWorkloads()
	}
}

// loadOldWorkloads reads the workloads file of version 1, if there is one
// (see workloadfile.LoadVersion1), and logs what it left out. It reports
// whether the agent is to write what it restores from it in a file of the
// current version.
func (a *Agent) loadOldWorkloads() (*workloadfile.Contents, bool, error) {
	w, dropped, err := workloadfile.LoadVersion1(a.cfg.DataDir, a.cfg.TrustDomain, a.trust, a.now())
	if err != nil {
		return nil, false, err
	}
	if len(dropped) > 0 {
		a.log.Warn("left out what does not check out in the saved workload SVIDs of version 1",
			"left_out", len(dropped), "first", dropped[0])
	}
	return w, true, nil
}

// upgradeWorkloads writes what the agent restored from a workloads file of
// version 1 in a file of the current version, which replaces it: the file
// of version 1 is removed once the new one is durably written (see
// workloadfile.Save). When that fails, the file of version 1 stays, and is
// read again at the next start unless a save replaces it first.
func (a *Agent) upgradeWorkloads() {
	svids, _ := a.iss.X509SVIDs()
	entries := a.iss.Entries()
	if _, err := workloadfile.Save(a.cfg.DataDir, a.cfg.TrustDomain, &workloadfile.Contents{Agent: a.ID(), Entries: entries, SVIDs: svids,
		Federated: a.trust.FederatedBundles(), Taints: a.taints()}); err != nil {
		a.log.Warn("writing the saved workload SVIDs of version 1 in the current version failed", "err", err)
		return
	}
	a.log.Info("replaced the saved workload SVIDs of version 1 with a file of the current version",
		"entries", len(entries), "svids", len(svids))
}

// taints returns what the trust knows of the tainted CAs and keys, as the
// workloads file keeps it.
func (a *Agent) taints() workloadfile.Taints {
	cas, jwt, wit := a.trust.Taints()
	return workloadfile.Taints{CAs: cas, JWT: jwt, WIT: wit}
}

// forgetTrust forgets the federated bundles and taints restoreWorkloads
// gave the trust, with the file that held them.
func (a *Agent) forgetTrust() {
	a.trust.SetTaintedKeys(nil, nil)
	a.trust.Set(nil, true, nil, nil, nil)
}

// forgetRestored removes the entries restoreWorkloads replicated.
func (a *Agent) forgetRestored(ctx context.Context) {
	ids := make([]string, 0, a.store.Len())
	for id := range a.store.Revisions() {
		ids = append(ids, id)
	}
	if err := a.store.Replicate(ctx, nil, ids); err != nil {
		a.log.Warn("forgetting the saved entries failed", "err", err)
	}
	if err := a.iss.Sync(ctx); err != nil {
		a.log.Warn("forgetting the saved entries failed", "err", err)
	}
}

// saveLoop writes the workloads file when what it would hold changed from
// last, what the file holds, and then stayed the same for a
// workloadsSaveInterval, or has kept changing for workloadsMaxUnsaved of
// them; a taintSaveDelay after the set of tainted CAs and keys changed;
// and once more when ctx ends. It is the only writer of the file while
// the agent runs, so that saves never overlap.
func (a *Agent) saveLoop(ctx context.Context, last workloadsState) error {
	taints, unsubscribe := a.trust.SubscribeTaints()
	defer unsubscribe()
	prev, waited := last, 0
	t := time.NewTicker(workloadsSaveInterval)
	defer t.Stop()
	// soon is armed while a change of the taints waits to be written; the
	// changes that come meanwhile wait with it.
	var soon <-chan time.Time
	arm := func() {
		if soon == nil {
			soon = time.After(taintSaveDelay)
		}
	}
	if a.trust.TaintsVersion() != last.taints {
		arm() // changed before the subscription
	}
	for {
		select {
		case <-ctx.Done():
			a.saveWorkloads(&last)
			return nil
		case <-taints:
			arm()
			continue
		case <-soon:
			soon = nil
			if a.trust.TaintsVersion() != last.taints {
				// A failed write is tried again at the next look.
				a.saveWorkloads(&last)
			}
			continue
		case <-t.C:
		}
		st := a.workloadsState()
		switch {
		case st == last:
			waited = 0
		case st == prev || waited+1 >= workloadsMaxUnsaved:
			a.saveWorkloads(&last)
			waited = 0
		default:
			waited++
		}
		prev = st
	}
}

// saveWorkloads writes the workloads file if what it would hold differs
// from *last, and records what it wrote in *last.
func (a *Agent) saveWorkloads(last *workloadsState) {
	st := a.workloadsState()
	if st == *last {
		return
	}
	id := a.ID()
	if id.IsZero() {
		return
	}
	start := time.Now()
	svids, _ := a.iss.X509SVIDs()
	wits, _ := a.iss.WITSVIDs()
	entries := a.iss.Entries()
	size, err := workloadfile.Save(a.cfg.DataDir, a.cfg.TrustDomain, &workloadfile.Contents{Agent: id, Entries: entries, SVIDs: svids,
		WITs: wits, Federated: a.trust.FederatedBundles(), Taints: a.taints()})
	if err != nil {
		a.log.Warn("saving the workload SVIDs failed; trying again later", "err", err)
		return
	}
	*last = st
	a.log.Debug("saved the workload SVIDs", "entries", len(entries), "svids", len(svids), "wit_svids", len(wits), "bytes", size,
		"took", time.Since(start).Round(time.Millisecond))
	if size >= releaseAfterSave {
		// The write's copies of every entry and SVID are garbage now, as
		// is what the burst of changes that led to it (a large sync, its
		// mints) allocated; the Go runtime keeps the pages that held them,
		// up to its heap goal, for allocations to come. A save follows a
		// burst that has settled, after which an agent allocates little:
		// give them back now, for one collection of the heap (some
		// milliseconds for ten thousand entries), at most once a save.
		debug.FreeOSMemory()
	}
}
