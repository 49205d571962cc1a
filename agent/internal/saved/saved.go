package saved

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/spiffekit/spiffekit/agent/internal/replica"
	"github.com/spiffekit/spiffekit/agent/internal/trust"
	"github.com/spiffekit/spiffekit/agent/internal/workloadfile"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DefaultSaveInterval is how often the agent looks whether to write its
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
// again, is written within taintSaveDelay.
const DefaultSaveInterval = 2 * time.Second

// DefaultReleaseAfterSave is the size of a workloads file from which the
// agent returns its free heap to the system once the file is written: a
// file of a thousand entries or more.
const DefaultReleaseAfterSave int64 = 1 << 20

// workloadsMaxUnsaved bounds, in intervals, how long changes wait to be
// written while they go on.
const workloadsMaxUnsaved = 6

// taintSaveDelay is how long after the set of tainted CAs and keys
// changed the agent writes its workloads file, rather than at its next
// look (see DefaultSaveInterval): a taint lost in a crash would let an
// agent restarted with every server away serve again what the tainted CA
// or key signed. The changes of that time (a taint of a CA, then one of a
// JWT key) cost one write.
const taintSaveDelay = 100 * time.Millisecond

// Config configures New.
type Config struct {
	// Dir is the agent's data directory, which holds the workloads file
	// (see agent/internal/workloadfile). Required.
	Dir string
	// TrustDomain is the agent's trust domain. Required.
	TrustDomain spiffeid.TrustDomain
	// WITSVIDs says whether the agent serves WIT-SVIDs: only then are the
	// saved ones restored.
	WITSVIDs bool
	// Issuer is the agent's issuer, whose entries, SVIDs and WIT-SVIDs are
	// saved and restored. Required.
	Issuer *issuer.Issuer
	// Trust is the agent's trust state, whose federated bundles and
	// taints are saved and restored. Required.
	Trust *trust.State
	// Entries is the agent's replica, which restored entries are given
	// to. Required.
	Entries *replica.Entries
	// ID returns the agent's SPIFFE ID, or the zero ID while it holds no
	// SVID, in which case nothing is saved. Required.
	ID func() spiffeid.ID
	// Now returns the current time, which checks the SVIDs of a file of
	// version 1. Nil means time.Now.
	Now func() time.Time
	// Logger receives what is restored, saved and refused. Nil discards
	// it.
	Logger *slog.Logger
	// SaveInterval is how often Run looks whether to write the file. Zero
	// means DefaultSaveInterval.
	SaveInterval time.Duration
	// ReleaseAfterSave is the size of a file from which a save returns
	// the free heap to the system. Zero means DefaultReleaseAfterSave.
	ReleaseAfterSave int64
}

// Workloads restores the agent's workloads from its data directory, and
// saves them there while the agent runs. Run is its only writer; Restore
// is called before it.
type Workloads struct {
	cfg Config
	log *slog.Logger
}

// New returns the Workloads of cfg. It reads and writes nothing.
func New(cfg Config) *Workloads {
	s := &Workloads{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.SaveInterval == 0 {
		s.cfg.SaveInterval = DefaultSaveInterval
	}
	if s.cfg.ReleaseAfterSave == 0 {
		s.cfg.ReleaseAfterSave = DefaultReleaseAfterSave
	}
	return s
}

// State says what the workloads file would hold: it changes when the
// entries, the SVIDs, the bundles or the taints do; its field taints, with
// the taints alone. States are comparable with ==.
type State struct {
	svids, wits, entries, trust, taints uint64
}

// State returns what the workloads file would hold now.
func (s *Workloads) State() State {
	return State{svids: s.cfg.Issuer.X509SVIDsVersion(), wits: s.cfg.Issuer.WITSVIDsVersion(), entries: uint64(s.cfg.Entries.Version()),
		trust: s.cfg.Trust.Version(), taints: s.cfg.Trust.TaintsVersion()}
}

// Restore serves again what the agent held when it stopped: the entries,
// their X509-SVIDs and the federated bundles saved in the data directory,
// when the agent, whose ID is agentID, reuses the saved agent SVID they
// were saved with. The tainted CAs and keys saved with them are the trust's again
// before the SVIDs are restored, so that none of what they signed is
// served (see issuer.Restore), and the agent renews its own SVID at once
// if it is one; the server's first sync replaces them. A file that cannot be read safely, or whose content does not hold
// together, is refused with an error in the log, and the agent starts
// without it, as an agent that saved nothing. ctx bounds the reading. It
// reports whether it restored the file.
func (s *Workloads) Restore(ctx context.Context, agentID spiffeid.ID) bool {
	start := time.Now()
	w, err := workloadfile.Load(s.cfg.Dir, s.cfg.TrustDomain)
	upgrade := false
	if errors.Is(err, workloadfile.ErrNotFound) {
		w, upgrade, err = s.loadOldWorkloads()
	}
	switch {
	case errors.Is(err, workloadfile.ErrNotFound):
		return false
	case err != nil:
		s.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		return false
	case w.Agent != agentID:
		s.log.Warn("ignoring the saved workload SVIDs: they were saved by another agent", "saved_by", w.Agent.String())
		return false
	}
	if err := s.cfg.Entries.Replicate(ctx, w.Entries, nil); err != nil {
		s.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		return false
	}
	if err := s.cfg.Issuer.Sync(ctx); err != nil {
		s.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		s.forgetRestored(ctx)
		return false
	}
	s.cfg.Trust.SetTaintedKeys(w.Taints.JWT, w.Taints.WIT)
	s.cfg.Trust.Set(nil, true, w.Federated, w.Taints.CAs, nil)
	res, err := s.cfg.Issuer.Restore(w.SVIDs)
	if err != nil {
		s.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
		s.forgetTrust()
		s.forgetRestored(ctx)
		return false
	}
	attrs := []any{"entries", len(w.Entries), "svids", res.Restored, "expired", res.Expired, "stale", res.Stale}
	if res.Tainted > 0 {
		attrs = append(attrs, "tainted", res.Tainted)
	}
	if s.cfg.WITSVIDs {
		// Restored only where they may be served.
		wres, err := s.cfg.Issuer.RestoreWITSVIDs(w.WITs)
		if err != nil {
			s.log.Error("refusing the saved workload SVIDs; starting without them", "err", err)
			s.forgetTrust()
			s.forgetRestored(ctx)
			return false
		}
		attrs = append(attrs, "wit_svids", wres.Restored, "wit_expired", wres.Expired,
			"wit_untrusted", wres.Untrusted, "wit_stale", wres.Stale)
		if wres.Tainted > 0 {
			attrs = append(attrs, "wit_tainted", wres.Tainted)
		}
	}
	s.log.Info("serving the saved workload SVIDs until the agent syncs with a server",
		append(attrs, "took", time.Since(start).Round(time.Millisecond))...)
	if upgrade {
		s.upgradeWorkloads()
	}
	return true
}

// loadOldWorkloads reads the workloads file of version 1, if there is one
// (see workloadfile.LoadVersion1), and logs what it left out. It reports
// whether the agent is to write what it restores from it in a file of the
// current version.
func (s *Workloads) loadOldWorkloads() (*workloadfile.Contents, bool, error) {
	w, dropped, err := workloadfile.LoadVersion1(s.cfg.Dir, s.cfg.TrustDomain, s.cfg.Trust, s.cfg.Now())
	if err != nil {
		return nil, false, err
	}
	if len(dropped) > 0 {
		s.log.Warn("left out what does not check out in the saved workload SVIDs of version 1",
			"left_out", len(dropped), "first", dropped[0])
	}
	return w, true, nil
}

// upgradeWorkloads writes what the agent restored from a workloads file of
// version 1 in a file of the current version, which replaces it: the file
// of version 1 is removed once the new one is durably written (see
// workloadfile.Save). When that fails, the file of version 1 stays, and is
// read again at the next start unless a save replaces it first.
func (s *Workloads) upgradeWorkloads() {
	svids, _ := s.cfg.Issuer.X509SVIDs()
	entries := s.cfg.Issuer.Entries()
	if _, err := workloadfile.Save(s.cfg.Dir, s.cfg.TrustDomain, &workloadfile.Contents{Agent: s.cfg.ID(), Entries: entries, SVIDs: svids,
		Federated: s.cfg.Trust.FederatedBundles(), Taints: s.taints()}); err != nil {
		s.log.Warn("writing the saved workload SVIDs of version 1 in the current version failed", "err", err)
		return
	}
	s.log.Info("replaced the saved workload SVIDs of version 1 with a file of the current version",
		"entries", len(entries), "svids", len(svids))
}

// taints returns what the trust knows of the tainted CAs and keys, as the
// workloads file keeps it.
func (s *Workloads) taints() workloadfile.Taints {
	cas, jwt, wit := s.cfg.Trust.Taints()
	return workloadfile.Taints{CAs: cas, JWT: jwt, WIT: wit}
}

// forgetTrust forgets the federated bundles and taints Restore
// gave the trust, with the file that held them.
func (s *Workloads) forgetTrust() {
	s.cfg.Trust.SetTaintedKeys(nil, nil)
	s.cfg.Trust.Set(nil, true, nil, nil, nil)
}

// forgetRestored removes the entries Restore replicated.
func (s *Workloads) forgetRestored(ctx context.Context) {
	ids := make([]string, 0, s.cfg.Entries.Len())
	for id := range s.cfg.Entries.Revisions() {
		ids = append(ids, id)
	}
	if err := s.cfg.Entries.Replicate(ctx, nil, ids); err != nil {
		s.log.Warn("forgetting the saved entries failed", "err", err)
	}
	if err := s.cfg.Issuer.Sync(ctx); err != nil {
		s.log.Warn("forgetting the saved entries failed", "err", err)
	}
}

// Run writes the workloads file when what it would hold changed from
// last, what the file holds, and then stayed the same for a
// Config.SaveInterval, or has kept changing for workloadsMaxUnsaved of
// them; a taintSaveDelay after the set of tainted CAs and keys changed;
// and once more when ctx ends. It is the only writer of the file while
// the agent runs, so that saves never overlap.
func (s *Workloads) Run(ctx context.Context, last State) error {
	taints, unsubscribe := s.cfg.Trust.SubscribeTaints()
	defer unsubscribe()
	prev, waited := last, 0
	t := time.NewTicker(s.cfg.SaveInterval)
	defer t.Stop()
	// soon is armed while a change of the taints waits to be written; the
	// changes that come meanwhile wait with it.
	var soon <-chan time.Time
	arm := func() {
		if soon == nil {
			soon = time.After(taintSaveDelay)
		}
	}
	if s.cfg.Trust.TaintsVersion() != last.taints {
		arm() // changed before the subscription
	}
	for {
		select {
		case <-ctx.Done():
			s.save(&last)
			return nil
		case <-taints:
			arm()
			continue
		case <-soon:
			soon = nil
			if s.cfg.Trust.TaintsVersion() != last.taints {
				// A failed write is tried again at the next look.
				s.save(&last)
			}
			continue
		case <-t.C:
		}
		st := s.State()
		switch {
		case st == last:
			waited = 0
		case st == prev || waited+1 >= workloadsMaxUnsaved:
			s.save(&last)
			waited = 0
		default:
			waited++
		}
		prev = st
	}
}

// save writes the workloads file if what it would hold differs
// from *last, and records what it wrote in *last.
func (s *Workloads) save(last *State) {
	st := s.State()
	if st == *last {
		return
	}
	id := s.cfg.ID()
	if id.IsZero() {
		return
	}
	start := time.Now()
	svids, _ := s.cfg.Issuer.X509SVIDs()
	wits, _ := s.cfg.Issuer.WITSVIDs()
	entries := s.cfg.Issuer.Entries()
	size, err := workloadfile.Save(s.cfg.Dir, s.cfg.TrustDomain, &workloadfile.Contents{Agent: id, Entries: entries, SVIDs: svids,
		WITs: wits, Federated: s.cfg.Trust.FederatedBundles(), Taints: s.taints()})
	if err != nil {
		s.log.Warn("saving the workload SVIDs failed; trying again later", "err", err)
		return
	}
	*last = st
	s.log.Debug("saved the workload SVIDs", "entries", len(entries), "svids", len(svids), "wit_svids", len(wits), "bytes", size,
		"took", time.Since(start).Round(time.Millisecond))
	if size >= s.cfg.ReleaseAfterSave {
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
