package rotation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/publickey"
)

// prepareAt is when the successor of the active authority s is prepared.
func (m *Manager) prepareAt(s *slot) time.Time {
	life := s.notAfter.Sub(s.notBefore)
	return s.notBefore.Add(time.Duration(float64(life) * m.cfg.PrepareFraction))
}

// activateAt is when the prepared successor of the active authority s
// becomes active: at ActivateFraction of s's life, or earlier when less than
// one SVID TTL remains, but never before the prepare threshold.
func (m *Manager) activateAt(k kind, s *slot) time.Time {
	life := s.notAfter.Sub(s.notBefore)
	t := s.notBefore.Add(time.Duration(float64(life) * m.cfg.ActivateFraction))
	ttl := m.cfg.X509SVIDTTL
	switch k {
	case kindJWT:
		ttl = m.cfg.JWTSVIDTTL
	case kindWIT:
		ttl = m.cfg.WITSVIDTTL
	}
	if reserve := s.notAfter.Add(-ttl); reserve.Before(t) {
		t = reserve
	}
	if p := m.prepareAt(s); t.Before(p) {
		t = p
	}
	return t
}

// change is a pending change of state, committed as one journal write.
type change struct {
	m       *Manager
	st      *state
	destroy []string // key IDs to destroy once the journal no longer has them
	events  []event  // logged after the commit
	changed bool
}

func (m *Manager) begin() *change {
	return &change{m: m, st: m.snap.Load().state.clone()}
}

// event is a log line about one authority.
type event struct {
	msg  string
	k    kind
	slot *slot
}

func (c *change) record(msg string, k kind, s *slot) {
	c.events = append(c.events, event{msg: msg, k: k, slot: s})
}

// Rotate performs the rotation steps due at the current time (Config.Now),
// for the X.509 CA, the JWT key and, with Config.WITKeys, the WIT key: drop
// expired authorities, prepare, activate. Run calls it on schedule; tests call it directly after moving
// their clock. It writes the journal once if anything changed.
func (m *Manager) Rotate(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.begin()
	now := m.now()
	for _, k := range kinds {
		if err := c.rotate(ctx, k, now); err != nil {
			return err
		}
	}
	return c.commit(ctx)
}

func (c *change) rotate(ctx context.Context, k kind, now time.Time) error {
	st := c.st
	if k == kindWIT && !c.m.cfg.WITKeys {
		c.retire(k, now)
		return nil
	}
	// An expired active authority can sign nothing more.
	if a := st.find(k, StateActive); a != nil && !now.Before(a.notAfter) {
		a.state = StateOld
		c.changed = true
	}
	// Drop what has expired: nothing it signed is still valid.
	for _, s := range append([]*slot(nil), st.slots[k]...) {
		if s.state != StateActive && !now.Before(s.notAfter) {
			c.drop(k, s, "expired")
		}
	}
	if st.find(k, StateActive) == nil {
		if st.find(k, StatePrepared) == nil {
			if err := c.prepare(ctx, k, now); err != nil {
				return err
			}
		}
		c.activate(k)
		return nil
	}
	active := st.find(k, StateActive)
	if st.find(k, StatePrepared) == nil && !now.Before(c.m.prepareAt(active)) {
		if err := c.prepare(ctx, k, now); err != nil {
			return err
		}
	}
	if st.find(k, StatePrepared) != nil && !now.Before(c.m.activateAt(k, active)) {
		c.activate(k)
	}
	return nil
}

// retire winds down the authorities of a kind the manager no longer
// rotates (WIT keys of a journal written with Config.WITKeys, read
// without): the active one becomes old, and each stays in the bundle until
// its expiry, so that what it signed keeps validating.
func (c *change) retire(k kind, now time.Time) {
	if a := c.st.find(k, StateActive); a != nil {
		a.state = StateOld
		c.changed = true
		c.record("authority retired", k, a)
	}
	for _, s := range append([]*slot(nil), c.st.slots[k]...) {
		switch {
		case s.state == StatePrepared:
			c.drop(k, s, "no longer rotated")
		case !now.Before(s.notAfter):
			c.drop(k, s, "expired")
		}
	}
}

func (c *change) drop(k kind, s *slot, why string) {
	c.st.remove(k, s)
	c.destroy = append(c.destroy, s.keyID)
	c.changed = true
	c.record("authority dropped: "+why, k, s)
}

// prepare mints a new authority of kind k in the prepared state, replacing
// (and dropping) a prepared one that exists: it never signed anything.
func (c *change) prepare(ctx context.Context, k kind, now time.Time) error {
	if old := c.st.find(k, StatePrepared); old != nil {
		c.drop(k, old, "replaced")
	}
	if len(c.st.slots[k]) >= maxAuthorities {
		return fmt.Errorf("%w: %d %ss", ErrTooManyAuthorities, len(c.st.slots[k]), k)
	}
	s, err := c.m.mint(ctx, k, now)
	if err != nil {
		return err
	}
	c.st.slots[k] = append(c.st.slots[k], s)
	c.changed = true
	c.record("authority prepared", k, s)
	return nil
}

// activate makes the prepared authority active and the active one old.
func (c *change) activate(k kind) {
	p := c.st.find(k, StatePrepared)
	if a := c.st.find(k, StateActive); a != nil {
		a.state = StateOld
	}
	p.state = StateActive
	c.changed = true
	c.record("authority activated", k, p)
}

// commit writes the journal and then publishes the new state. Nothing is
// published unless the journal write succeeded, so an authority never signs
// before the journal records it. Keys are destroyed last: a crash before
// then leaves an orphan key, never a journal naming a missing key.
func (c *change) commit(ctx context.Context) error {
	if !c.changed {
		return nil
	}
	m := c.m
	prev := m.snap.Load()
	if !sameKeys(prev.bundle, buildBundle(m.td, c.st, m.cfg.RefreshHint)) || prev.state.seq == 0 {
		c.st.seq = prev.state.seq + 1
	}
	doc, err := encodeJournal(m.td, c.st)
	if err != nil {
		return fmt.Errorf("rotation: cannot encode journal: %w", err)
	}
	if err := m.jrnl.Store(ctx, doc); err != nil {
		return err
	}
	m.snap.Store(m.newSnapshot(c.st))
	for _, e := range c.events {
		m.log.Info(e.msg, "trust_domain", m.td.Name(), "kind", e.k.String(), "id", e.slot.id(),
			"key_id", e.slot.keyID, "not_after", e.slot.notAfter, "bundle_sequence", c.st.seq)
	}
	if d, ok := m.keys.(ca.KeyDestroyer); ok {
		for _, id := range c.destroy {
			if err := d.DestroyKey(ctx, id); err != nil {
				m.log.Warn("cannot destroy key", "key_id", id, "err", err)
			}
		}
	}
	m.notify()
	m.wake()
	return nil
}

// newKeyID returns a fresh key ID: random, so that a key generated before a
// crash and never journaled is never confused with a later one.
func newKeyID(k kind) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	prefix := "x509-"
	switch k {
	case kindJWT:
		prefix = "jwt-"
	case kindWIT:
		prefix = "wit-"
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// mint creates the key and the certificate of a new authority of kind k.
func (m *Manager) mint(ctx context.Context, k kind, now time.Time) (*slot, error) {
	keyID, err := newKeyID(k)
	if err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	alg, keyTTL := m.cfg.X509CAKeyAlgorithm, time.Duration(0)
	switch k {
	case kindJWT:
		alg, keyTTL = m.cfg.JWTKeyAlgorithm, m.cfg.JWTKeyTTL
	case kindWIT:
		alg, keyTTL = m.cfg.WITKeyAlgorithm, m.cfg.WITKeyTTL
	}
	signer, err := m.keys.GenerateKey(ctx, keyID, alg)
	if err != nil {
		return nil, fmt.Errorf("rotation: cannot generate %s key: %w", k, err)
	}
	s := &slot{keyID: keyID, state: StatePrepared}
	if k.keyed() {
		s.kid, err = ca.KeyID(signer.Public())
		if err != nil {
			return nil, fmt.Errorf("rotation: %w", err)
		}
		s.pub = signer.Public()
		s.notBefore, s.notAfter = now, now.Add(keyTTL)
	} else {
		if s.chain, s.roots, err = m.mintCA(ctx, signer); err != nil {
			return nil, err
		}
		s.notBefore, s.notAfter = s.chain[0].NotBefore, s.chain[0].NotAfter
		if !now.Before(s.notAfter) {
			return nil, fmt.Errorf("rotation: new X.509 CA expired at %v", s.notAfter)
		}
	}
	if err := m.attach(k, s, signer); err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	return s, nil
}

// mintCA signs the certificate of a new X.509 CA: self-signed, or by the
// upstream authority. It returns the chain (CA first, roots left out) and
// the bundle roots.
func (m *Manager) mintCA(ctx context.Context, signer crypto.Signer) (chain, roots []*x509.Certificate, err error) {
	if m.cfg.Upstream == nil {
		root, err := ca.CreateRoot(ctx, ca.RootParams{
			Signer: signer, TrustDomain: m.td, TTL: m.cfg.CATTL, Now: m.now,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("rotation: %w", err)
		}
		return []*x509.Certificate{root}, []*x509.Certificate{root}, nil
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{m.td.ID().URL()},
	}, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: cannot create CSR: %w", err)
	}
	resp, err := m.cfg.Upstream.MintX509CA(ctx, ca.X509CARequest{
		CSR: csr, PublicKey: signer.Public(), TrustDomain: m.td, TTL: m.cfg.CATTL,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rotation: upstream authority: %w", err)
	}
	if len(resp.Chain) == 0 || len(resp.Roots) == 0 || len(resp.Chain) > maxChainLen || len(resp.Roots) > maxChainLen {
		return nil, nil, fmt.Errorf("rotation: upstream authority returned %d chain certificates and %d roots", len(resp.Chain), len(resp.Roots))
	}
	// Roots travel in bundles, not in chains (X509 rule 15).
	chain = []*x509.Certificate{resp.Chain[0]}
	for _, c := range resp.Chain[1:] {
		if !containsCert(resp.Roots, c) {
			chain = append(chain, c)
		}
	}
	if err := checkCAChain(m.td, chain, resp.Roots); err != nil {
		return nil, nil, fmt.Errorf("rotation: upstream authority: %w", err)
	}
	return chain, resp.Roots, nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// attach builds the signing authority of slot s with signer.
func (m *Manager) attach(k kind, s *slot, signer crypto.Signer) error {
	if k.keyed() {
		if !publickey.Equal(signer.Public(), s.pub) {
			return fmt.Errorf("key %q does not match the journal", s.keyID)
		}
		cfg := ca.JWTAuthorityConfig{
			Signer: signer, KeyID: s.kid, NotAfter: s.notAfter, TrustDomain: m.td, Now: m.now,
		}
		if k == kindWIT {
			a, err := ca.NewWITAuthority(ca.WITAuthorityConfig(cfg))
			if err != nil {
				return err
			}
			s.wit = a
			return nil
		}
		a, err := ca.NewJWTAuthority(cfg)
		if err != nil {
			return err
		}
		s.jwt = a
		return nil
	}
	a, err := ca.NewX509Authority(ca.X509AuthorityConfig{
		Signer: signer, Certificate: s.chain[0], UpstreamChain: s.chain[1:], Now: m.now,
	})
	if err != nil {
		return err
	}
	s.x509 = a
	return nil
}

// PrepareX509CA mints a new X.509 CA now and publishes it in the bundle,
// whatever the thresholds say; it replaces a prepared CA that exists. It
// fails with [ErrTooManyAuthorities] when 32 CAs exist.
func (m *Manager) PrepareX509CA(ctx context.Context) (AuthorityInfo, error) {
	return m.forcePrepare(ctx, kindX509)
}

// ActivateX509CA makes the prepared X.509 CA active now; the active one
// becomes old. It fails with [ErrNoPrepared] when none is prepared. Relying
// parties that have not refreshed their bundle since the CA was prepared
// reject what it signs.
func (m *Manager) ActivateX509CA(ctx context.Context) error { return m.forceActivate(ctx, kindX509) }

// TaintX509CA marks the old X.509 CA with the given ID (see
// [AuthorityInfo.ID]) as tainted: consumers watching [Manager.Subscribe]
// should replace the SVIDs it signed promptly (see [Manager.TaintedX509CAs]).
// Only an old CA can be tainted, else the error wraps [ErrWrongState]; an
// unknown ID fails with [ErrNotFound]. Tainting a tainted CA does nothing.
func (m *Manager) TaintX509CA(ctx context.Context, id string) error {
	return m.taint(ctx, kindX509, id)
}

// RevokeX509CA removes the X.509 CA with the given ID from the bundle and the
// journal, and destroys its key. The active CA cannot be revoked (the error
// wraps [ErrWrongState]): activate a successor first, and taint the old one
// so that its SVIDs are replaced before they stop verifying. With an
// upstream authority the bundle holds the upstream roots, which stay: the
// revoked CA's SVIDs then keep verifying until they expire.
func (m *Manager) RevokeX509CA(ctx context.Context, id string) error {
	return m.revoke(ctx, kindX509, id)
}

// PrepareJWTKey is [Manager.PrepareX509CA] for the JWT key.
func (m *Manager) PrepareJWTKey(ctx context.Context) (AuthorityInfo, error) {
	return m.forcePrepare(ctx, kindJWT)
}

// ActivateJWTKey is [Manager.ActivateX509CA] for the JWT key.
func (m *Manager) ActivateJWTKey(ctx context.Context) error { return m.forceActivate(ctx, kindJWT) }

// TaintJWTKey is [Manager.TaintX509CA] for the JWT key with the given kid.
func (m *Manager) TaintJWTKey(ctx context.Context, kid string) error {
	return m.taint(ctx, kindJWT, kid)
}

// RevokeJWTKey is [Manager.RevokeX509CA] for the JWT key with the given kid.
// Its JWT-SVIDs stop validating at once.
func (m *Manager) RevokeJWTKey(ctx context.Context, kid string) error {
	return m.revoke(ctx, kindJWT, kid)
}

// PrepareWITKey is [Manager.PrepareX509CA] for the WIT key. It fails with
// [ErrWrongState] unless Config.WITKeys is set.
func (m *Manager) PrepareWITKey(ctx context.Context) (AuthorityInfo, error) {
	if !m.cfg.WITKeys {
		return AuthorityInfo{}, fmt.Errorf("%w: WIT keys are not enabled", ErrWrongState)
	}
	return m.forcePrepare(ctx, kindWIT)
}

// ActivateWITKey is [Manager.ActivateX509CA] for the WIT key.
func (m *Manager) ActivateWITKey(ctx context.Context) error { return m.forceActivate(ctx, kindWIT) }

// TaintWITKey is [Manager.TaintX509CA] for the WIT key with the given kid.
func (m *Manager) TaintWITKey(ctx context.Context, kid string) error {
	return m.taint(ctx, kindWIT, kid)
}

// RevokeWITKey is [Manager.RevokeX509CA] for the WIT key with the given kid.
// Its WIT-SVIDs stop validating at once.
func (m *Manager) RevokeWITKey(ctx context.Context, kid string) error {
	return m.revoke(ctx, kindWIT, kid)
}

func (m *Manager) forcePrepare(ctx context.Context, k kind) (AuthorityInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.begin()
	if err := c.prepare(ctx, k, m.now()); err != nil {
		return AuthorityInfo{}, err
	}
	if err := c.commit(ctx); err != nil {
		return AuthorityInfo{}, err
	}
	for _, info := range m.infos(k) {
		if info.State == StatePrepared {
			return info, nil
		}
	}
	return AuthorityInfo{}, ErrNoPrepared // not reached: commit published it
}

func (m *Manager) forceActivate(ctx context.Context, k kind) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.begin()
	if c.st.find(k, StatePrepared) == nil {
		return fmt.Errorf("%w: %s", ErrNoPrepared, k)
	}
	c.activate(k)
	return c.commit(ctx)
}

func (m *Manager) taint(ctx context.Context, k kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.begin()
	s := c.st.byID(k, id)
	switch {
	case s == nil:
		return fmt.Errorf("%w: %s %q", ErrNotFound, k, id)
	case s.state != StateOld:
		return fmt.Errorf("%w: only an old %s can be tainted; %q is %s", ErrWrongState, k, id, s.state)
	case s.tainted:
		return nil
	}
	s.tainted = true
	c.changed = true
	c.record("authority tainted", k, s)
	return c.commit(ctx)
}

func (m *Manager) revoke(ctx context.Context, k kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.begin()
	s := c.st.byID(k, id)
	switch {
	case s == nil:
		return fmt.Errorf("%w: %s %q", ErrNotFound, k, id)
	case s.state == StateActive:
		return fmt.Errorf("%w: the active %s cannot be revoked", ErrWrongState, k)
	}
	c.drop(k, s, "revoked")
	return c.commit(ctx)
}
