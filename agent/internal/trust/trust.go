package trust

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// State is what the agent knows of its trust domain's authorities: the
// bundle, the federated bundles, the active CA and the tainted CAs and
// keys, as the server last sent them. It is the issuer's Trust (the agent's Signer goes
// to the server), its federation source, and the source that verifies the
// server. Its methods are safe for concurrent use.
type State struct {
	td spiffeid.TrustDomain

	mu        sync.RWMutex
	bundle    *spiffebundle.Bundle
	federated map[spiffeid.TrustDomain]*spiffebundle.Bundle
	tainted   []*x509.Certificate
	jwtKeys   []string // kids of the tainted JWT keys
	witKeys   []string // kids of the tainted WIT keys
	active    *x509.Certificate
	version   uint64 // counts the calls of set
	subs      broadcast.Hub
	// taintsVersion counts the changes of the set of tainted CAs and keys,
	// told taintSubs up to taintsTold: the agent saves them promptly.
	taintsVersion, taintsTold uint64
	taintSubs                 broadcast.Hub
}

var (
	_ ca.KeyTaintReporter = (*State)(nil)
	_ spiffebundle.Source = (*State)(nil)
	_ x509bundle.Source   = (*State)(nil)
)

// New returns the state of the trust domain of b, with b its bundle.
func New(b *spiffebundle.Bundle) *State {
	return &State{
		td:        b.TrustDomain(),
		bundle:    b,
		federated: make(map[spiffeid.TrustDomain]*spiffebundle.Bundle),
	}
}

// Bundle returns the trust domain's bundle as last received.
func (t *State) Bundle() *spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.bundle
}

// TaintedX509CAs returns the CAs the server named as tainted.
func (t *State) TaintedX509CAs() []*x509.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.tainted
}

// TaintedJWTKeyIDs returns the kids of the JWT keys the server named as
// tainted.
func (t *State) TaintedJWTKeyIDs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.jwtKeys
}

// TaintedWITKeyIDs returns the kids of the WIT keys the server named as
// tainted.
func (t *State) TaintedWITKeyIDs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.witKeys
}

// Taints returns the tainted CAs and the kids of the tainted JWT and WIT
// keys, as the server last sent them, or as the agent restored them from
// its data directory, all three read at once.
func (t *State) Taints() (cas []*x509.Certificate, jwt, wit []string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.tainted, t.jwtKeys, t.witKeys
}

// SetTaintedKeys records the tainted JWT and WIT keys of a sync update.
// The call of Set that follows tells subscribers.
func (t *State) SetTaintedKeys(jwt, wit []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !sameSet(t.jwtKeys, jwt, func(a, b string) bool { return a == b }) ||
		!sameSet(t.witKeys, wit, func(a, b string) bool { return a == b }) {
		t.taintsVersion++
	}
	t.jwtKeys, t.witKeys = jwt, wit
}

// SubscribeTaints returns a channel that receives a value (capacity 1,
// coalescing) after each call of Set that changed the set of tainted CAs
// or keys, or followed a SetTaintedKeys that did, and a function that
// ends the subscription.
func (t *State) SubscribeTaints() (<-chan struct{}, func()) { return t.taintSubs.Subscribe() }

// TaintsVersion returns a number that changes with the set of tainted CAs
// and keys.
func (t *State) TaintsVersion() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.taintsVersion
}

// sameSet reports whether a and b hold the same elements, in any order:
// the server may name the same taints in another order, which is no
// change. The lists are a trust domain's tainted authorities, a few: the
// quadratic walk costs less than building a set.
func sameSet[E any](a, b []E, eq func(E, E) bool) bool {
	if len(a) != len(b) {
		return false
	}
	in := func(s []E, v E) bool { return slices.ContainsFunc(s, func(w E) bool { return eq(v, w) }) }
	for k := range a {
		if !in(b, a[k]) || !in(a, b[k]) {
			return false
		}
	}
	return true
}

// ActiveX509CA returns the CA the server said signs now, or nil before it
// said.
func (t *State) ActiveX509CA() *x509.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.active
}

// Subscribe implements issuer.Trust: the channel receives a value
// (capacity 1, coalescing) after each call of Set.
func (t *State) Subscribe() (<-chan struct{}, func()) { return t.subs.Subscribe() }

// GetBundleForTrustDomain returns the own bundle or a federated one.
func (t *State) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if td == t.td {
		return t.bundle, nil
	}
	if b, ok := t.federated[td]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("agent: no bundle for trust domain %q", td)
}

// GetX509BundleForTrustDomain verifies the servers: only the own trust
// domain's authorities count.
func (t *State) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != t.td {
		return nil, fmt.Errorf("agent: no X.509 bundle for trust domain %q", td)
	}
	return t.Bundle().X509Bundle(), nil
}

// Set records what a sync update changed and tells subscribers. A nil
// bundle, or fed == nil with !fedSet, leaves that part unchanged; a bundle
// of another trust domain is ignored, as is a federated bundle of the own
// one.
func (t *State) Set(b *spiffebundle.Bundle, fedSet bool, fed []*spiffebundle.Bundle, tainted []*x509.Certificate, active *x509.Certificate) {
	t.mu.Lock()
	if active != nil {
		t.active = active
	}
	if b != nil && b.TrustDomain() == t.td {
		t.bundle = b
	}
	if fedSet {
		m := make(map[spiffeid.TrustDomain]*spiffebundle.Bundle, len(fed))
		for _, f := range fed {
			if f.TrustDomain() != t.td { // the own bundle never comes through federation
				m[f.TrustDomain()] = f
			}
		}
		t.federated = m
	}
	if !sameSet(t.tainted, tainted, (*x509.Certificate).Equal) {
		t.taintsVersion++
	}
	t.tainted = tainted
	t.version++
	taints := t.taintsVersion != t.taintsTold
	t.taintsTold = t.taintsVersion
	t.mu.Unlock()
	t.subs.Notify()
	if taints {
		t.taintSubs.Notify()
	}
}

// Version returns a number that changes with every call of Set.
func (t *State) Version() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.version
}

// FederatedBundles returns the federated bundles, sorted by trust domain.
func (t *State) FederatedBundles() []*spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*spiffebundle.Bundle, 0, len(t.federated))
	for _, b := range t.federated {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *spiffebundle.Bundle) int {
		return strings.Compare(a.TrustDomain().Name(), b.TrustDomain().Name())
	})
	return out
}
