package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// minted is the cached X509-SVID of one entry.
type minted struct {
	revision  int64 // of the entry it was minted for
	svid      *x509svid.SVID
	refreshAt time.Time // half its life
}

// view is what one caller sees, before it becomes an endpoint.Snapshot.
type view struct {
	svids   []*x509svid.SVID
	bundles []*spiffebundle.Bundle
}

// equal reports whether v and o hold the same SVIDs and bundles.
func (v view) equal(o view) bool {
	return slices.Equal(v.svids, o.svids) && slices.Equal(v.bundles, o.bundles)
}

// selectors attests caller and returns its selectors in registry form.
func (i *Issuer) selectors(ctx context.Context, caller endpoint.Caller) ([]registry.Selector, error) {
	if !caller.HasCredentials() {
		// Only a caller identified by the kernel can be attested (WE rule 5).
		return nil, fmt.Errorf("issuer: %w: caller has no kernel credentials", endpoint.ErrNoIdentity)
	}
	sels, err := i.cfg.Attestor.Attest(ctx, attest.Workload{
		PID:         caller.PID,
		Credentials: &attest.Credentials{UID: caller.UID, GID: caller.GID},
	})
	switch {
	case errors.Is(err, attest.ErrRejected):
		return nil, fmt.Errorf("issuer: %w: %w", endpoint.ErrNoIdentity, err)
	case err != nil && ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, fmt.Errorf("issuer: %w: attesting pid %d: %w", endpoint.ErrUnavailable, caller.PID, err)
	}
	out := make([]registry.Selector, 0, sels.Len())
	for s := range sels.All() {
		out = append(out, registry.Selector{Type: s.Type, Value: s.Value})
	}
	return out, nil
}

// entries returns the entries that apply to a caller with the given
// selectors, in a stable order (by SPIFFE ID, then entry ID), without a
// second entry carrying a hint already seen (WAPI rule 8: hints are unique
// within a response).
func (i *Issuer) entries(sels []registry.Selector) []registry.Entry {
	all := i.idx.ForWorkload(sels)
	out := all[:0]
	for _, e := range all {
		if i.cfg.ParentID.IsZero() || e.ParentID == i.cfg.ParentID {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b registry.Entry) int {
		if c := strings.Compare(a.SPIFFEID.String(), b.SPIFFEID.String()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	hints := make(map[string]bool)
	kept := out[:0]
	for _, e := range out {
		if e.Hint != "" {
			if hints[e.Hint] {
				i.log.Warn("entry skipped: its hint is taken by another entry of the same caller",
					"entry", e.ID, "spiffe_id", e.SPIFFEID.String(), "hint", e.Hint)
				continue
			}
			hints[e.Hint] = true
		}
		kept = append(kept, e)
	}
	return kept
}

// viewLocked computes the view of a caller with the given selectors,
// minting the SVIDs that are missing or due. A caller no entry applies to
// gets an empty view. i.mu must be held.
func (i *Issuer) viewLocked(ctx context.Context, sels []registry.Selector, now time.Time) (view, error) {
	entries := i.entries(sels)
	if len(entries) == 0 {
		return view{}, nil
	}
	v := view{bundles: []*spiffebundle.Bundle{i.bundle}}
	seen := map[string]bool{i.td.Name(): true}
	for _, e := range entries {
		s, err := i.svidLocked(ctx, e, now)
		if err != nil {
			return view{}, err
		}
		v.svids = append(v.svids, s)
		for _, td := range e.FederatesWith {
			if seen[td.Name()] || i.cfg.Federation == nil {
				continue
			}
			seen[td.Name()] = true
			b, err := i.cfg.Federation.GetBundleForTrustDomain(td)
			if err != nil || b == nil {
				i.log.Debug("no bundle for a federated trust domain", "trust_domain", td.Name(), "err", err)
				continue
			}
			v.bundles = append(v.bundles, b)
		}
	}
	return v, nil
}

// svidLocked returns the X509-SVID of entry e, minting a new one when there
// is none, it was minted for an older revision of e, or it is due. i.mu must
// be held.
func (i *Issuer) svidLocked(ctx context.Context, e registry.Entry, now time.Time) (*x509svid.SVID, error) {
	m := i.svids[e.ID]
	if m != nil && m.revision == e.Revision && !i.dueLocked(m, now) {
		return m.svid, nil
	}
	s, err := i.mint(ctx, e)
	if err != nil {
		if m != nil && m.revision == e.Revision && now.Before(m.svid.Certificates[0].NotAfter) {
			// Serve the old SVID while it is valid, and retry a little later.
			i.log.Warn("re-minting failed; serving the previous SVID", "entry", e.ID, "err", err)
			m.refreshAt = now.Add(retryInterval)
			return m.svid, nil
		}
		return nil, err
	}
	leaf := s.Certificates[0]
	i.mints++
	i.svids[e.ID] = &minted{
		revision:  e.Revision,
		svid:      s,
		refreshAt: leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2),
	}
	i.log.Info("minted X509-SVID", "entry", e.ID, "spiffe_id", e.SPIFFEID.String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return s, nil
}

// dueLocked reports whether m must be replaced: past half its life, signed
// by a tainted CA, or (unless LazyRotation) by a CA that is no longer the
// active one.
func (i *Issuer) dueLocked(m *minted, now time.Time) bool {
	if !now.Before(m.refreshAt) {
		return true
	}
	issuer := m.svid.Certificates[1].Raw
	if i.tainted[string(issuer)] {
		return true
	}
	return !i.cfg.LazyRotation && i.activeCA != nil && string(issuer) != string(i.activeCA)
}

// mint generates a key for entry e and has the active X.509 CA certify it.
func (i *Issuer) mint(ctx context.Context, e registry.Entry) (*x509svid.SVID, error) {
	authority := i.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, fmt.Errorf("issuer: %w: no active X.509 CA", endpoint.ErrUnavailable)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issuer: generating a key: %w", err)
	}
	ttl := e.X509SVIDTTL
	if ttl == 0 {
		ttl = i.cfg.X509SVIDTTL
	}
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{
		PublicKey: key.Public(),
		ID:        e.SPIFFEID,
		DNSNames:  e.DNSNames,
		TTL:       ttl,
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: minting an X509-SVID for entry %s: %w", e.ID, err)
	}
	if len(chain) < 2 {
		return nil, fmt.Errorf("issuer: minting an X509-SVID for entry %s: chain without its CA", e.ID)
	}
	return &x509svid.SVID{ID: e.SPIFFEID, Certificates: chain, PrivateKey: key, Hint: e.Hint}, nil
}
