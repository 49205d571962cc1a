package issuer

import (
	"time"

	"github.com/spiffekit/spiffekit/issuer/internal/restore"
	"github.com/spiffekit/spiffekit/issuer/internal/witmint"
)

// MaxSavedWITLength bounds the token and the private key of a
// SavedWITSVID that RestoreWITSVIDs takes, each: a WIT-SVID with a
// 4096-bit RSA cnf key is under 3 KiB.
const MaxSavedWITLength = 16 << 10

// SavedWITSVID is a WIT-SVID the issuer holds for an entry, as WITSVIDs
// returns it for a program to keep (a node agent keeps them on disk, so
// that it serves them again after a restart with its servers away) and
// RestoreWITSVIDs takes it back.
type SavedWITSVID struct {
	// EntryID and Revision name the entry, at the revision the WIT-SVID
	// was minted for.
	EntryID  string
	Revision int64
	// Token is the WIT-SVID, a compact JWS.
	Token string
	// PrivateKey is the private key the token binds, as the Workload API
	// serves it (a JWK, JSON): a secret.
	PrivateKey []byte
	// MintedAt is when the issuer received it, by its clock.
	MintedAt time.Time
}

// WITSVIDs returns the WIT-SVIDs the issuer holds, those it minted for
// FetchWITSVID callers and those it restored, with the number
// WITSVIDsVersion returned when they were read. Expired ones may be among
// them.
func (i *Issuer) WITSVIDs() ([]SavedWITSVID, uint64) {
	v := i.wit.Version()
	var out []SavedWITSVID
	i.wit.Each(func(id string, w witmint.WIT) {
		out = append(out, SavedWITSVID{EntryID: id, Revision: w.Revision, Token: w.Token,
			PrivateKey: []byte(w.Key), MintedAt: w.MintedAt})
	})
	return out, v
}

// WITSVIDsVersion returns a number that changes whenever the WIT-SVIDs
// the issuer holds do (one minted or restored, those of a key tainted or
// gone from the bundle dropped), so that a program that keeps them knows
// when to save them again.
func (i *Issuer) WITSVIDsVersion() uint64 { return i.wit.Version() }

// RestoreWITSVIDs has the issuer hold WIT-SVIDs saved from WITSVIDs, so
// that it serves them to FetchWITSVID callers without a WITSigner, as if
// it had minted them (and re-mints them at half their life, serving them
// meanwhile while the signer fails). Each is taken only for an entry of
// the registry indexed now at the revision it was minted for, that holds
// no WIT-SVID yet; those that have expired are left out, and counted as
// Expired, and so are those whose signing key is not in the trust
// domain's bundle (Config.Trust) now, counted as Untrusted, and those whose
// signing key the Trust names as tainted when RestoreWITSVIDs reads it,
// counted as Tainted: they would not be served. Call it before Run, after
// the registry holds the entries (see Sync).
//
// Each WIT-SVID is checked in full: its signature, with the bundle's WIT
// key it names, and that it names its entry's SPIFFE ID and binds its
// private key. One that fails a check fails the call, and nothing is
// restored: whatever held it cannot be trusted.
func (i *Issuer) RestoreWITSVIDs(saved []SavedWITSVID) (RestoreResult, error) {
	v := i.restoreView(len(saved))
	kept, r, err := restore.WITs(v, func(yield func(*restore.WITSVID) bool) {
		for k := range saved {
			if !yield((*restore.WITSVID)(&saved[k])) {
				return
			}
		}
	}, MaxSavedWITLength)
	if err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult(r)
	for _, k := range kept {
		if !i.wit.Restore(k.ID, witmint.WIT(k.SVID), v.Now) {
			res.Stale++
			continue
		}
		res.Restored++
	}
	if res.Restored > 0 {
		i.wit.Restored()
	}
	return res, nil
}
