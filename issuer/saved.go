package issuer

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

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
	out := make([]SavedX509SVID, 0, len(i.svids))
	for id, m := range i.svids {
		out = append(out, SavedX509SVID{EntryID: id, Revision: m.revision, Certificates: m.svid.Certificates,
			PrivateKey: m.svid.PrivateKey, MintedAt: m.mintedAt})
	}
	return out, i.svidsVersion
}

// X509SVIDsVersion returns a number that changes whenever the X509-SVIDs
// the issuer holds do (one minted, replaced, restored or dropped), so that
// a program that keeps them knows when to save them again.
func (i *Issuer) X509SVIDsVersion() uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.svidsVersion
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
}

// Restore has the issuer hold X509-SVIDs saved from X509SVIDs, so that it
// serves them without a Signer, as if it had minted them: a node agent
// started again while its servers are away serves the SVIDs it held. Each
// is taken only for an entry of the registry indexed now at the revision
// it was minted for, that holds no SVID yet; expired ones are left out.
// Each is checked as a new mint is (a chain of at least two certificates
// for the entry's SPIFFE ID, for the key, the leaf signed by the next
// certificate), and its chain must verify with the trust domain's bundle
// (Config.Trust) now: an SVID that fails a check fails the call, and
// nothing is restored, since whatever held it cannot be trusted. The
// restored SVIDs are re-minted as minted ones are (at half their life,
// when their CA changes), and served meanwhile. Call it before Run, after
// the registry holds the entries (see Sync).
func (i *Issuer) Restore(saved []SavedX509SVID) (RestoreResult, error) {
	entries := make(map[string]registry.Entry, len(saved))
	for _, e := range i.idx.All() {
		entries[e.ID] = e
	}
	now := i.now()
	var res RestoreResult
	type candidate struct {
		s     SavedX509SVID
		e     registry.Entry
		certs []*x509.Certificate
		m     *minted
	}
	cands := make([]candidate, 0, len(saved))
	for _, s := range saved {
		e, ok := entries[s.EntryID]
		if !ok || e.Revision != s.Revision {
			res.Stale++
			continue
		}
		cands = append(cands, candidate{s: s, e: e})
	}
	// Parsing and checking cost a signature check each: on every core.
	errs := make([]error, len(cands))
	onEveryCore(len(cands), func(k int) {
		c := &cands[k]
		c.certs, c.m, errs[k] = checkSaved(c.e, c.s)
	})
	if err := errors.Join(errs...); err != nil {
		return RestoreResult{}, fmt.Errorf("issuer: restoring X509-SVIDs: %w", err)
	}
	// Each distinct chain above the leaf is verified with the bundle once.
	i.mu.Lock()
	bundle := i.bundle
	i.mu.Unlock()
	verified := make(map[string]bool)
	kept := cands[:0]
	for _, c := range cands {
		if !now.Before(c.m.notAfter) {
			res.Expired++
			continue
		}
		var key strings.Builder
		for _, der := range c.s.Certificates[1:] {
			key.Write(der)
			key.WriteByte(0)
		}
		if !verified[key.String()] {
			if _, _, err := x509svid.Verify(c.certs, bundle.X509Bundle(), x509svid.WithTime(now)); err != nil {
				return RestoreResult{}, fmt.Errorf("issuer: restoring the X509-SVID of entry %s: its chain does not verify with the bundle: %w", c.e.ID, err)
			}
			verified[key.String()] = true
		}
		kept = append(kept, c)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, c := range kept {
		if i.svids[c.e.ID] != nil || i.inflight[c.e.ID] != nil {
			res.Stale++
			continue
		}
		c.m.caGen = i.caGen
		i.setSVIDLocked(c.e.ID, c.m)
		res.Restored++
	}
	return res, nil
}

// checkSaved parses s, an SVID saved for entry e, checks it as checkChain
// checks a new one (except for expiry, which the caller counts), and
// returns its parsed chain and what the issuer keeps of it.
func checkSaved(e registry.Entry, s SavedX509SVID) ([]*x509.Certificate, *minted, error) {
	if len(s.Certificates) < 2 || len(s.Certificates) > x509svid.MaxChainLength {
		return nil, nil, fmt.Errorf("entry %s: a chain of %d certificates", e.ID, len(s.Certificates))
	}
	certs := make([]*x509.Certificate, len(s.Certificates))
	for k, der := range s.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %s: certificate %d: %w", e.ID, k, err)
		}
		certs[k] = c
	}
	parsed, err := x509.ParsePKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("entry %s: the key does not parse", e.ID) // no detail of a secret
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("entry %s: the key cannot sign", e.ID)
	}
	// Expiry is the caller's to count: checked against the leaf's NotBefore.
	if err := checkChain(e, key, certs, certs[0].NotBefore); err != nil {
		return nil, nil, fmt.Errorf("entry %s: %w", e.ID, err)
	}
	leaf := certs[0]
	start := later(leaf.NotBefore, s.MintedAt)
	refreshAt := start.Add(leaf.NotAfter.Sub(start) / 2)
	chain := make([][]byte, len(s.Certificates))
	copy(chain, s.Certificates)
	m := &minted{
		revision:  e.Revision,
		svid:      &endpoint.RawX509SVID{ID: e.SPIFFEID, Certificates: chain, PrivateKey: s.PrivateKey, Hint: e.Hint},
		refreshAt: refreshAt,
		notBefore: leaf.NotBefore,
		notAfter:  leaf.NotAfter,
		mintedAt:  s.MintedAt.Round(0),
	}
	return certs, m, nil
}
