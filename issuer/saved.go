package issuer

import (
	"time"

	"github.com/spiffekit/spiffekit/issuer/internal/restore"
	"github.com/spiffekit/spiffekit/issuer/internal/x509store"
	"github.com/spiffekit/spiffekit/registry"
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
	kept, r, err := restore.X509s(i.restoreView(len(saved)), func(yield func(*restore.X509SVID) bool) {
		for k := range saved {
			if !yield((*restore.X509SVID)(&saved[k])) {
				return
			}
		}
	})
	if err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult(r)
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, k := range kept {
		if i.svids.Get(k.ID) != nil || i.inflight[k.ID] != nil {
			res.Stale++
			continue
		}
		s := k.SVID
		i.svids.Set(k.ID, &x509store.SVID{Revision: s.Revision, SVID: s.SVID, RefreshAt: s.RefreshAt,
			NotBefore: s.NotBefore, NotAfter: s.NotAfter, MintedAt: s.MintedAt, CAGen: i.auth.Gen})
		res.Restored++
	}
	return res, nil
}

// restoreView reads the Trust again, and takes the view that n saved SVIDs
// are restored against: the entries the issuer indexes now, the time, the
// trust domain's bundle and what the Trust names as tainted.
func (i *Issuer) restoreView(n int) restore.View {
	i.refreshCA() // what the program handed back through the Trust since New
	v := restore.View{Entries: make(map[string]registry.Entry, n), Now: i.now()}
	for _, e := range i.idx.All() {
		v.Entries[e.ID] = e
	}
	i.mu.Lock()
	// refreshCA replaces the sets whole, never changes them: they may be
	// read without the lock.
	v.Bundle, v.Tainted, v.TaintedWIT = i.auth.Bundle, i.auth.Tainted, i.auth.TaintedWIT
	i.mu.Unlock()
	return v
}
