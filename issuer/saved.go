package issuer

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/issuer/internal/x509store"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// SavedX509SVID is an X509-SVID the issuer holds for an entry, as
// X509SVIDs returns it for a program to keep (a node agent keeps them on
// disk, so that it serves them again after a restart with its servers
// away) and Restore takes it back.
type SavedX509SVID struct {
	// EntryID and Revision name the entry, at the revision the SVID was
	// minted for.
	EntryID  string
	Revision int64
	// Certificates hold the DER of the chain, the leaf first.
	Certificates [][]byte
	// PrivateKey is the leaf's private key, PKCS#8 DER: a secret.
	PrivateKey []byte
	// NotBefore and NotAfter are the leaf's.
	NotBefore, NotAfter time.Time
	// MintedAt is when the issuer received it, by its clock.
	MintedAt time.Time
}

// X509SVIDs returns the X509-SVIDs the issuer holds, with the number
// X509SVIDsVersion returned when they were read. The slices of each are
// shared with the issuer, which never changes them: the caller must not
// either.
func (i *Issuer) X509SVIDs() ([]SavedX509SVID, uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := make([]SavedX509SVID, 0, i.svids.Len())
	for id, m := range i.svids.All() {
		out = append(out, SavedX509SVID{EntryID: id, Revision: m.Revision, Certificates: m.SVID.Certificates,
			PrivateKey: m.SVID.PrivateKey, NotBefore: m.NotBefore, NotAfter: m.NotAfter, MintedAt: m.MintedAt})
	}
	return out, i.svids.Version()
}

// X509SVIDsVersion returns a number that changes whenever the X509-SVIDs
// the issuer holds do (one minted, replaced, restored or dropped), so that
// a program that keeps them knows when to save them again.
func (i *Issuer) X509SVIDsVersion() uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.svids.Version()
}

// Entries returns every entry of the registry as the issuer indexed it,
// sorted by ID.
func (i *Issuer) Entries() []registry.Entry { return i.idx.All() }

// RestoreResult says what Restore did with the SVIDs it was given.
type RestoreResult struct {
	// Restored counts the SVIDs the issuer now holds.
	Restored int
	// Expired counts the SVIDs left out because they have expired.
	Expired int
	// Stale counts the SVIDs left out because their entry is gone, has
	// another revision, or already has an SVID minted since.
	Stale int
	// Untrusted counts the WIT-SVIDs RestoreWITSVIDs left out because the
	// trust domain's bundle no longer holds the key that signed them.
	// Restore leaves it zero.
	Untrusted int
	// Tainted counts the SVIDs left out because the Trust names as
	// tainted what signed them: a CA of an X509-SVID's chain, the key of a
	// WIT-SVID. They are not served; the issuer has new ones signed once
	// its Signer answers, as it replaces those it holds when a taint
	// comes.
	Tainted int
}

// Restore has the issuer hold X509-SVIDs saved from X509SVIDs, so that it
// serves them without a Signer, as if it had minted them: a node agent
// started again while its servers are away serves the SVIDs it held. Each
// is taken only for an entry of the registry indexed now at the revision
// it was minted for, that holds no SVID yet; expired ones (by NotAfter) are
// left out, and so are those whose chain holds a CA the Trust names as
// tainted when Restore reads it (counted as Tainted): a program that keeps
// the SVIDs keeps the tainted CAs with them, and hands them back through
// its Trust before it calls Restore, so that an SVID it held when a taint
// came is not served again from its store while its servers are away.
// The restored SVIDs are re-minted as minted ones are (at half their
// life, when their CA changes), and served meanwhile. Call it before Run,
// after the registry holds the entries (see Sync).
//
// Restore checks each chain above the leaf once, with the leaf of one SVID
// it signed, as a new mint is checked (the leaf for the entry's SPIFFE ID
// and for the key, signed by the next certificate) and against the trust
// domain's bundle (Config.Trust) now; of every other SVID, that it has a
// leaf, a key and dates. It does not parse each: ten thousand of them took
// seconds. What it is given must come from X509SVIDs through a store only
// the program can change (the agent's: a file only its uid may read or
// write, with a digest of its content). An SVID that fails a check fails
// the call, and nothing is restored: whatever held it cannot be trusted.
func (i *Issuer) Restore(saved []SavedX509SVID) (RestoreResult, error) {
	v := i.restoreView(len(saved))
	now, bundle := v.now, v.bundle
	var res RestoreResult
	var kept []restored[*x509store.SVID]
	checked := make(map[string]bool) // the chains above the leaf, checked
	for _, s := range saved {
		e, ok := v.entry(s.EntryID, s.Revision)
		if !ok {
			res.Stale++
			continue
		}
		if len(s.Certificates) < 2 || len(s.Certificates) > x509svid.MaxChainLength || len(s.PrivateKey) == 0 ||
			slices.ContainsFunc(s.Certificates, func(der []byte) bool { return len(der) == 0 }) ||
			s.NotBefore.IsZero() || !s.NotBefore.Before(s.NotAfter) {
			return RestoreResult{}, fmt.Errorf("issuer: restoring the X509-SVID of entry %s: it lacks a certificate, its key or its dates", e.ID)
		}
		if !now.Before(s.NotAfter) {
			res.Expired++
			continue
		}
		if slices.ContainsFunc(s.Certificates[1:], func(der []byte) bool { return v.tainted[string(der)] }) {
			res.Tainted++
			continue
		}
		var key strings.Builder
		for _, der := range s.Certificates[1:] {
			key.Write(der)
			key.WriteByte(0)
		}
		if !checked[key.String()] {
			if err := svidcheck.Saved(e, s.Certificates, s.PrivateKey, s.NotBefore, s.NotAfter, bundle, now); err != nil {
				return RestoreResult{}, fmt.Errorf("issuer: restoring the X509-SVID of entry %s: %w", e.ID, err)
			}
			checked[key.String()] = true
		}
		start := later(s.NotBefore, s.MintedAt)
		chain := make([][]byte, len(s.Certificates))
		copy(chain, s.Certificates)
		kept = append(kept, restored[*x509store.SVID]{id: e.ID, v: &x509store.SVID{
			Revision:  e.Revision,
			SVID:      &endpoint.RawX509SVID{ID: e.SPIFFEID, Certificates: chain, PrivateKey: s.PrivateKey, Hint: e.Hint},
			RefreshAt: start.Add(s.NotAfter.Sub(start) / 2),
			NotBefore: s.NotBefore,
			NotAfter:  s.NotAfter,
			MintedAt:  s.MintedAt.Round(0),
		}})
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, r := range kept {
		if i.svids.Get(r.id) != nil || i.inflight[r.id] != nil {
			res.Stale++
			continue
		}
		r.v.CAGen = i.caGen
		i.svids.Set(r.id, r.v)
		res.Restored++
	}
	return res, nil
}

// A restoreView is what Restore and RestoreWITSVIDs check saved SVIDs
// against: the entries the issuer indexes now, by ID, the time, the trust
// domain's bundle and what the Trust names as tainted, taken once for all
// the SVIDs of a call.
type restoreView struct {
	entries    map[string]registry.Entry
	now        time.Time
	bundle     *spiffebundle.Bundle
	tainted    map[string]bool // the DER of the tainted X.509 CAs
	taintedWIT map[string]bool // the kids of the tainted WIT keys
}

// restoreView reads the Trust again, and takes the view that n saved SVIDs
// are restored against.
func (i *Issuer) restoreView(n int) restoreView {
	i.refreshCA() // what the program handed back through the Trust since New
	v := restoreView{entries: make(map[string]registry.Entry, n), now: i.now()}
	for _, e := range i.idx.All() {
		v.entries[e.ID] = e
	}
	i.mu.Lock()
	// refreshCA replaces the sets whole, never changes them: they may be
	// read without the lock.
	v.bundle, v.tainted, v.taintedWIT = i.bundle, i.tainted, i.taintedWIT
	i.mu.Unlock()
	return v
}

// entry returns the entry an SVID saved for entry id at revision rev was
// minted for, or false when the registry no longer holds the entry at
// that revision: the SVID is stale.
func (v restoreView) entry(id string, rev int64) (registry.Entry, bool) {
	e, ok := v.entries[id]
	return e, ok && e.Revision == rev
}

// restored is an SVID (an X509-SVID's *x509store.SVID, a WIT-SVID's cachedWIT)
// that passed its checks, for entry id, held until the issuer takes it.
type restored[T any] struct {
	id string
	v  T
}
