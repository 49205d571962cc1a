package issuer

import (
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/issuer/internal/selection"
	"github.com/spiffekit/spiffekit/issuer/internal/viewcache"
	"github.com/spiffekit/spiffekit/issuer/internal/x509store"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// entries returns the entries that apply to a caller with the given
// selectors (see selection.ForCaller).
func (i *Issuer) entries(sels []attest.Selector) []registry.Entry {
	return selection.ForCaller(i.idx, sels, i.cfg.ParentID, i.log)
}

// viewLocked builds, from the cache, the view of a caller the given
// entries apply to, with the SVIDs of those that have a usable one. It
// mints nothing: it returns the entries that have none as missing. i.mu
// must be held.
func (i *Issuer) viewLocked(entries []registry.Entry, now time.Time) (v viewcache.View, missing []registry.Entry) {
	if len(entries) == 0 {
		return viewcache.View{}, nil
	}
	v = viewcache.View{Bundles: []*spiffebundle.Bundle{i.auth.Bundle}}
	var key strings.Builder
	var seen map[spiffeid.TrustDomain]bool // the federated trust domains looked up
	for _, e := range entries {
		m := i.svids.Get(e.ID)
		if !m.Usable(e, now) {
			missing = append(missing, e)
			continue
		}
		v.SVIDs = append(v.SVIDs, m.SVID)
		key.WriteString(e.ID)
		key.WriteByte(0)
		for _, td := range e.FederatesWith {
			if i.cfg.Federation == nil || td == i.td || seen[td] {
				continue
			}
			if seen == nil {
				seen = make(map[spiffeid.TrustDomain]bool) // only for the entries that federate
			}
			seen[td] = true
			b, err := i.cfg.Federation.GetBundleForTrustDomain(td)
			if err != nil || b == nil {
				i.log.Debug("no bundle for a federated trust domain", "trust_domain", td.Name(), "err", err)
				continue
			}
			v.Bundles = append(v.Bundles, b)
		}
	}
	v.Key = key.String()
	return v, missing
}

// needsMintLocked reports whether e needs a new SVID now: it has none that
// is usable, or it is due (see dueLocked), and no mint of it is in flight.
// i.mu must be held.
func (i *Issuer) needsMintLocked(e registry.Entry, now time.Time) bool {
	if i.inflight[e.ID] != nil {
		return false
	}
	m := i.svids.Get(e.ID)
	return !m.Usable(e, now) || i.dueLocked(m, now)
}

// dueLocked reports whether m must be replaced: past half its life, signed
// by a tainted CA, or (unless LazyRotation) by a CA that is no longer the
// active one. While the Trust does not know the active CA (ActiveX509CA
// returns nil), the issuer behaves as with LazyRotation. i.mu must be held.
func (i *Issuer) dueLocked(m *x509store.SVID, now time.Time) bool {
	if !now.Before(m.RefreshAt) {
		return true
	}
	if m.CAGen == i.auth.Gen {
		// Minted since the CA last changed: if its CA is still not the
		// active one (a Signer that signs with another), minting again
		// would only loop.
		return false
	}
	return i.auth.Replaces(m.SVID.Certificates[1], i.cfg.LazyRotation)
}
