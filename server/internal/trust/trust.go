package trust

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Stores are what the servers of a trust domain keep in their database
// besides entries. A store that is a registry.Notifier has Run refresh the
// view as soon as it tells of a write.
type Stores struct {
	// Shares keeps the servers' shares of the bundle and the marks on
	// their authorities.
	Shares registry.ServerBundleStore
	// Bundles keeps the federated bundles.
	Bundles registry.BundleStore
}

// View is the server's view of the trust domain's authorities: its own
// rotating CA, merged with the authorities the other servers sharing the
// database publish, less those an operator revoked, and the federated
// bundles kept in the database. It is the ca.Authority and
// nodeserver.FederationSource of the server. Its methods are safe for
// concurrent use.
//
// # Taints and revocations across servers
//
// Each server publishes, beside its share of the bundle, the state of its
// authorities (registry.ServerAuthority). An operator's taint or revocation
// of an authority of another server is recorded as a registry.AuthorityMark
// (see AuthorityManager); the store tells every server of it. The owning
// server applies it to its own CA at its next refresh, and publishes the
// result. Meanwhile, and if the owner is away, every server honours it:
// the bundle it hands out leaves a revoked authority out, and the CAs it
// names as tainted to its agents include every server's tainted CAs, so
// that a taint made anywhere reaches every agent (spire#5587). A mark only
// ever names an old authority (the only state that can be tainted or,
// through another server, revoked; states only move forward), so no mark
// can take the authority that signs now out of anyone's bundle.
type View struct {
	ca       *rotation.Manager
	stores   Stores
	serverID string
	td       spiffeid.TrustDomain
	log      *slog.Logger
	now      func() time.Time

	// refreshMu serialises refreshes, which read and write the store:
	// serialising them is the point, so that an older view never replaces
	// a newer one. It also guards warned.
	refreshMu sync.Mutex
	warned    map[string]bool // marks that cannot be applied, logged once

	mu          sync.RWMutex
	merged      *spiffebundle.Bundle
	seq         uint64
	peers       []registry.ServerBundle
	marks       []registry.AuthorityMark
	peerTainted []*x509.Certificate // the other servers' tainted CAs, with the marks
	peerJWT     []string            // kids of the other servers' tainted JWT keys, with the marks
	peerWIT     []string            // kids of the other servers' tainted WIT keys, with the marks
	federated   []*spiffebundle.Bundle
	fedDocs     map[string]string
	authState   string    // the active and tainted authorities, as last told
	renewAt     time.Time // when the own share, as stored, must be published again
	subs        broadcast.Hub
}

// The own share of the trust domain's bundle lasts as long as the own
// authorities, and at least shareLifetime; it is published again when it
// changes or when less than shareRenewal of it remains. A server that stops
// for good drops out of the bundle once its share lapses.
const (
	shareLifetime = time.Hour
	shareRenewal  = 30 * time.Minute
)

var (
	_ ca.Authority                = (*View)(nil)
	_ ca.WITIssuer                = (*View)(nil)
	_ ca.KeyTaintReporter         = (*View)(nil)
	_ nodeserver.FederationSource = (*View)(nil)
	_ spiffebundle.Source         = (*View)(nil)
)

// New returns the view of the server serverID over its CA m and the
// shared stores, logging to log and reading the clock with now. It reads
// nothing yet: Refresh does.
func New(m *rotation.Manager, stores Stores, serverID string, log *slog.Logger, now func() time.Time) *View {
	t := &View{
		ca:       m,
		stores:   stores,
		serverID: serverID,
		td:       m.Bundle().TrustDomain(),
		log:      log,
		now:      now,
		fedDocs:  map[string]string{},
		warned:   map[string]bool{},
	}
	t.merged = t.merge()
	t.seq, _ = t.merged.SequenceNumber()
	t.authState = t.authorityState()
	return t
}

// authorityState sums up the own CA's active X.509 CA, JWT key and WIT key,
// and every server's tainted CAs, JWT keys and WIT keys. ca.Authority's
// subscribers must hear of a change of these even when the bundle stays
// the same (an activation or a taint changes no bundle), so that agents
// re-mint with the new CA or key. The caller holds t.mu, or has not shared
// t yet.
func (t *View) authorityState() string {
	var b strings.Builder
	if a := t.ca.X509Authority(); a != nil {
		b.Write(a.Certificate().Raw)
	}
	b.WriteString("|")
	if a := t.ca.JWTAuthority(); a != nil {
		b.WriteString(a.KeyID())
	}
	b.WriteString("|")
	if a := t.ca.WITAuthority(); a != nil {
		b.WriteString(a.KeyID())
	}
	for _, c := range t.taintedLocked() {
		b.WriteString("|")
		b.Write(c.Raw)
	}
	// Kids are UTF-8 text without control characters: "\x00" cannot be
	// part of one.
	for _, kid := range t.taintedKIDsLocked(t.ca.TaintedJWTKeyIDs(), t.peerJWT) {
		b.WriteString("\x00jwt:" + kid)
	}
	for _, kid := range t.taintedKIDsLocked(t.ca.TaintedWITKeyIDs(), t.peerWIT) {
		b.WriteString("\x00wit:" + kid)
	}
	return b.String()
}

// X509Authority returns the server's own active X.509 CA.
func (t *View) X509Authority() *ca.X509Authority { return t.ca.X509Authority() }

// JWTAuthority returns the server's own active JWT key.
func (t *View) JWTAuthority() *ca.JWTAuthority { return t.ca.JWTAuthority() }

// WITAuthority returns the server's own active WIT key, or nil when the
// server does not sign WIT-SVIDs.
func (t *View) WITAuthority() *ca.WITAuthority { return t.ca.WITAuthority() }

// TaintedX509CAs returns the tainted CAs of every server of the trust
// domain: the own CA's, at once, and the other servers' as they published
// them or as the recorded marks say, as of the last refresh.
func (t *View) TaintedX509CAs() []*x509.Certificate {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.taintedLocked()
}

// taintedLocked is TaintedX509CAs with t.mu held.
func (t *View) taintedLocked() []*x509.Certificate {
	out := t.ca.TaintedX509CAs()
	for _, c := range t.peerTainted {
		if !slices.ContainsFunc(out, func(o *x509.Certificate) bool { return bytes.Equal(o.Raw, c.Raw) }) {
			out = append(out, c)
		}
	}
	return out
}

// TaintedJWTKeyIDs returns the kids of the tainted JWT keys of every
// server of the trust domain: the own CA's, at once, and the other
// servers' as they published them or as the recorded marks say, as of the
// last refresh.
func (t *View) TaintedJWTKeyIDs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.taintedKIDsLocked(t.ca.TaintedJWTKeyIDs(), t.peerJWT)
}

// TaintedWITKeyIDs is TaintedJWTKeyIDs for the WIT keys.
func (t *View) TaintedWITKeyIDs() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.taintedKIDsLocked(t.ca.TaintedWITKeyIDs(), t.peerWIT)
}

// taintedKIDsLocked returns own, then the kids of peers it lacks. t.mu is
// held.
func (t *View) taintedKIDsLocked(own, peers []string) []string {
	for _, kid := range peers {
		if !slices.Contains(own, kid) {
			own = append(own, kid)
		}
	}
	return own
}

// Bundle returns the trust domain's bundle: the server's own authorities
// and those of every other live server of the trust domain. It is never
// nil.
func (t *View) Bundle() *spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.merged
}

// FederatedBundles returns the bundles of foreign trust domains.
func (t *View) FederatedBundles() []*spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Clone(t.federated)
}

// FederatedBundle returns the stored bundle of the foreign trust domain
// td, or nil.
func (t *View) FederatedBundle(td spiffeid.TrustDomain) *spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, b := range t.federated {
		if b.TrustDomain() == td {
			return b
		}
	}
	return nil
}

// Subscribe implements ca.Authority and nodeserver.FederationSource.
func (t *View) Subscribe() (<-chan struct{}, func()) { return t.subs.Subscribe() }

// TrustDomain returns the trust domain of the server's CA.
func (t *View) TrustDomain() spiffeid.TrustDomain { return t.td }

// GetBundleForTrustDomain implements spiffebundle.Source for the bundle
// endpoint: the trust domain's own bundle, as the server hands it out.
func (t *View) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if td != t.td {
		return nil, fmt.Errorf("server: no bundle for trust domain %q", td.Name())
	}
	return t.Bundle(), nil
}

// merge builds the trust domain's bundle from the own CA's and the
// peers', less the peers' authorities that recorded marks revoke. Its
// sequence number grows by one on every change of content. The caller
// holds t.mu, or has not shared t yet.
func (t *View) merge() *spiffebundle.Bundle {
	own := t.ca.Bundle()
	b := own.Clone()
	h := honour(t.peers, t.marks)
	for _, p := range t.peers {
		pb, err := spiffebundle.Parse(t.td, p.Document)
		if err != nil {
			t.log.Warn("ignoring an unreadable bundle of another server", "server_id", p.ServerID, "err", err)
			continue
		}
		for _, c := range pb.X509Authorities() {
			if !b.HasX509Authority(c) && !h.revokedX509[string(c.Raw)] {
				b.AddX509Authority(c)
			}
		}
		for kid, key := range pb.JWTAuthorities() {
			if !b.HasJWTAuthority(kid) && !h.revokedJWT[kid] {
				_ = b.AddJWTAuthority(kid, key)
			}
		}
		// The other servers' WIT keys, so that a WIT-SVID any server of
		// the trust domain signed validates everywhere. A kid clash with
		// a JWT key (WIT rule 16) leaves the key out.
		for kid, key := range pb.WITAuthorities() {
			if !b.HasWITAuthority(kid) && !h.revokedWIT[kid] {
				_ = b.AddWITAuthority(kid, key)
			}
		}
	}
	return b
}

// minRenewWait spaces the attempts to publish a share due for renewal
// when publishing fails.
const minRenewWait = 10 * time.Second

// Run keeps the view fresh until ctx is done: it refreshes it when the own
// CA changes, when the stores tell of a write of the servers' shares or of
// the federated bundles, every poll, and when the own share is due for
// renewal. A failed refresh is logged and tried again at the next of
// these.
func (t *View) Run(ctx context.Context, poll time.Duration) {
	caUpdates, unsubscribe := t.ca.Subscribe()
	defer unsubscribe()
	shares, cancelShares := subscribe(t.stores.Shares, registry.TopicAuthorities)
	defer cancelShares()
	bundles, cancelBundles := subscribe(t.stores.Bundles, registry.TopicBundles)
	defer cancelBundles()
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	// Subscribed first: what changed since New is read now.
	t.refreshLogged(ctx)
	renew := time.NewTimer(t.RenewIn(minRenewWait))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-caUpdates:
		case <-shares:
		case <-bundles:
		case <-ticker.C:
		case <-renew.C:
		}
		t.refreshLogged(ctx)
		renew.Reset(t.RenewIn(minRenewWait))
	}
}

// refreshLogged refreshes the view, logging a failure.
func (t *View) refreshLogged(ctx context.Context) {
	if err := t.Refresh(ctx); err != nil && ctx.Err() == nil {
		t.log.Warn("refreshing the bundle failed", "err", err)
	}
}

// subscribe subscribes to topics of store if it is a registry.Notifier;
// otherwise the channel is nil, never ready.
func subscribe(store any, topics registry.Topic) (<-chan struct{}, func()) {
	if n, ok := store.(registry.Notifier); ok {
		return n.Subscribe(topics)
	}
	return nil, func() {}
}

// Refresh publishes the own authorities for the other servers if the
// stored share differs or is due for renewal, reads the other servers'
// shares and the federated bundles, and tells subscribers if anything
// changed. Since it writes only what changed, servers woken by each
// other's writes do not wake each other again.
func (t *View) Refresh(ctx context.Context) error {
	t.refreshMu.Lock()
	defer t.refreshMu.Unlock()
	now := t.now()
	marks, err := t.stores.Shares.ListAuthorityMarks(ctx, now)
	if err != nil {
		return fmt.Errorf("server: reading the authority marks: %w", err)
	}
	t.applyMarks(ctx, marks)
	own := t.ca.Bundle()
	all, err := t.stores.Shares.ListServerBundles(ctx, now)
	if err != nil {
		return fmt.Errorf("server: reading the other servers' bundles: %w", err)
	}
	var stored *registry.ServerBundle
	peers := slices.DeleteFunc(all, func(b registry.ServerBundle) bool {
		if b.ServerID == t.serverID {
			stored = &b
			return true
		}
		return false
	})
	share, err := t.share(own, now)
	if err != nil {
		return err
	}
	if stored == nil || !sameShare(*stored, share) || stored.ExpiresAt.Sub(now) < shareRenewal {
		if err := t.stores.Shares.PutServerBundle(ctx, share); err != nil {
			return fmt.Errorf("server: publishing the bundle: %w", err)
		}
		stored = &share
	}
	fed, err := t.stores.Bundles.ListBundles(ctx)
	if err != nil {
		return fmt.Errorf("server: reading the federated bundles: %w", err)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.renewAt = stored.ExpiresAt.Add(-shareRenewal)
	changed := false
	t.peers, t.marks = peers, marks
	h := honour(peers, marks)
	t.peerTainted, t.peerJWT, t.peerWIT = h.tainted, h.taintedJWT, h.taintedWIT
	if st := t.authorityState(); st != t.authState {
		t.authState = st
		changed = true
	}
	merged := t.merge()
	merged.ClearSequenceNumber()
	cur := t.merged.Clone()
	cur.ClearSequenceNumber()
	if !merged.Equal(cur) {
		ownSeq, _ := own.SequenceNumber()
		t.seq = max(t.seq+1, ownSeq)
		merged.SetSequenceNumber(t.seq)
		t.merged = merged
		changed = true
	}
	docs := make(map[string]string, len(fed))
	var bundles []*spiffebundle.Bundle
	for _, f := range fed {
		if f.TrustDomain == t.td {
			continue // never: the own bundle is not federated
		}
		b, err := spiffebundle.Parse(f.TrustDomain, f.Document)
		if err != nil {
			t.log.Warn("ignoring an unreadable federated bundle", "trust_domain", f.TrustDomain.Name(), "err", err)
			continue
		}
		docs[f.TrustDomain.Name()] = string(f.Document)
		bundles = append(bundles, b)
	}
	if !mapsEqual(docs, t.fedDocs) {
		t.fedDocs, t.federated = docs, bundles
		changed = true
	}
	if changed {
		t.subs.Notify()
	}
	return nil
}

// share is the own share of the trust domain's bundle as it is to be
// stored at now: the own CA's bundle, lasting as long as its last
// authority and at least shareLifetime.
func (t *View) share(own *spiffebundle.Bundle, now time.Time) (registry.ServerBundle, error) {
	doc, err := own.Marshal()
	if err != nil {
		return registry.ServerBundle{}, fmt.Errorf("server: encoding the bundle: %w", err)
	}
	expires := now.Add(shareLifetime)
	for _, c := range own.X509Authorities() {
		if c.NotAfter.After(expires) {
			expires = c.NotAfter
		}
	}
	return registry.ServerBundle{ServerID: t.serverID, Document: doc, ExpiresAt: expires, Authorities: ownAuthorities(t.ca)}, nil
}

// sameShare reports whether the stored share says what want says: the
// same document and the same authorities, compared in the store's form
// (times to the microsecond), so that a share read back is the same as
// the one written.
func sameShare(stored, want registry.ServerBundle) bool {
	want, err := registry.PrepareServerBundle(want, want.UpdatedAt)
	if err != nil {
		return false // publishing it will say why
	}
	return bytes.Equal(stored.Document, want.Document) &&
		slices.EqualFunc(stored.Authorities, want.Authorities, func(a, b registry.ServerAuthority) bool {
			return a.Kind == b.Kind && a.ID == b.ID && a.State == b.State && a.Tainted == b.Tainted &&
				a.NotAfter.Equal(b.NotAfter) && bytes.Equal(a.Certificate, b.Certificate)
		})
}

// RenewIn returns how long until the own share must be published again,
// at least minWait.
func (t *View) RenewIn(minWait time.Duration) time.Duration {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return max(t.renewAt.Sub(t.now()), minWait)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
