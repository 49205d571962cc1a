package rotation

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of [Config].
const (
	DefaultPrepareFraction  = 0.5
	DefaultActivateFraction = 5.0 / 6.0
	DefaultRefreshHint      = 5 * time.Minute
)

// maxRunWait bounds how long Run sleeps between checks, so that a clock jump
// or an injected clock unrelated to the timers still gets noticed.
const maxRunWait = time.Minute

// minRetryWait is how long Run waits before it tries a failed step again
// the first time; each failure in a row doubles it, up to maxRunWait.
const minRetryWait = time.Second

// Config describes a [Manager]. New copies it.
type Config struct {
	// TrustDomain is the trust domain the CA signs for. Required.
	TrustDomain spiffeid.TrustDomain

	// KeyManager stores the signing keys (see package ca/keymanager). Nil
	// means a new [keymanager.Memory], whose keys die with the process.
	KeyManager ca.KeyManager

	// Upstream signs the X.509 CA certificates. Nil means each CA is a
	// self-signed root, published in the bundle itself.
	Upstream ca.UpstreamAuthority

	// Journal records the rotation state so that a restarted manager
	// continues with the same authorities and bundle. Nil means the state
	// lives in memory only. The journal refers to keys by ID, so it must be
	// paired with the same persistent KeyManager on every start.
	Journal Journal

	// X509SVIDTTL is the lifetime of X509-SVIDs signed through
	// [Manager.SignX509SVID] with a zero TTL, and the reserve of life an
	// active CA keeps (see [Manager]). Zero means ca.DefaultX509SVIDTTL
	// (1 hour).
	X509SVIDTTL time.Duration

	// JWTSVIDTTL is the same for JWT-SVIDs. Zero means
	// ca.DefaultJWTSVIDTTL (5 minutes).
	JWTSVIDTTL time.Duration

	// CATTL is the lifetime requested for each X.509 CA. Zero means
	// ca.DefaultX509CATTL (24 hours). It must exceed X509SVIDTTL; six
	// times as much or more leaves the default thresholds room to work.
	CATTL time.Duration

	// JWTKeyTTL is the lifetime of each JWT key. Zero means CATTL. It must
	// exceed JWTSVIDTTL.
	JWTKeyTTL time.Duration

	// X509CAKeyAlgorithm and JWTKeyAlgorithm are the types of new keys.
	// Empty means [ca.ECP256].
	X509CAKeyAlgorithm ca.KeyAlgorithm
	JWTKeyAlgorithm    ca.KeyAlgorithm

	// WITKeys, when true, also runs a WIT-SVID signing key (WIT-SVIDs are
	// an incubating standard, hence opt-in): rotated as the JWT key is,
	// published in the bundle with use "wit-svid" (WIT rule 16), signing
	// through [Manager.WITAuthority]. False (the default) keeps the bundle
	// and the journal as they were without WIT; a manager started without
	// it over a journal that has WIT keys makes the active one old and
	// keeps them in the bundle until they expire.
	WITKeys bool

	// WITSVIDTTL is the lifetime of WIT-SVIDs signed through
	// [Manager.SignWITSVID] with a zero TTL, and the reserve of life an
	// active WIT key keeps. Zero means ca.DefaultWITSVIDTTL (1 hour).
	WITSVIDTTL time.Duration

	// WITKeyTTL is the lifetime of each WIT key. Zero means CATTL. It must
	// exceed WITSVIDTTL.
	WITKeyTTL time.Duration

	// WITKeyAlgorithm is the type of new WIT keys. Empty means [ca.ECP256].
	WITKeyAlgorithm ca.KeyAlgorithm

	// PrepareFraction is the fraction of the active authority's life after
	// which the next one is prepared and published. Zero means
	// DefaultPrepareFraction (1/2).
	PrepareFraction float64

	// ActivateFraction is the fraction of the active authority's life after
	// which the prepared one becomes active. Zero means
	// DefaultActivateFraction (5/6). It must be above PrepareFraction and
	// below 1.
	ActivateFraction float64

	// RefreshHint is the spiffe_refresh_hint of the bundle. Zero means
	// DefaultRefreshHint (5 minutes).
	RefreshHint time.Duration

	// Now returns the current time; it is used for every threshold and
	// passed to the authorities. Nil means time.Now.
	Now func() time.Time

	// Logger receives rotation events (authority IDs, key IDs, expiries).
	// Nil discards them.
	Logger *slog.Logger
}

// AuthorityInfo describes one X.509 CA, JWT key or WIT key of the manager.
type AuthorityInfo struct {
	// ID identifies the authority to operators and to [Manager.TaintX509CA]
	// and friends: the lowercase hex SubjectKeyId of an X.509 CA
	// certificate, the kid of a JWT or WIT key.
	ID string

	// KeyID is the key's ID in the KeyManager.
	KeyID string

	// State is where the authority is in its rotation.
	State State

	// Tainted reports whether an operator asked for everything the
	// authority signed to be replaced.
	Tainted bool

	// NotBefore and NotAfter bound the authority's validity. Nothing it
	// signs outlives NotAfter.
	NotBefore, NotAfter time.Time

	// Certificate is the CA certificate of an X.509 CA; nil for a key.
	// It must not be modified.
	Certificate *x509.Certificate

	// PublicKey is the authority's public key.
	PublicKey crypto.PublicKey
}

// Errors of the operator actions; callers test them with errors.Is.
var (
	// ErrNotFound: no authority has the given ID.
	ErrNotFound = errors.New("rotation: no such authority")

	// ErrNoPrepared: there is no prepared authority to activate.
	ErrNoPrepared = errors.New("rotation: no prepared authority")

	// ErrWrongState: the authority is in a state the action does not apply
	// to, e.g. revoking the active authority.
	ErrWrongState = errors.New("rotation: authority is in the wrong state")

	// ErrTooManyAuthorities: a forced prepare would keep more than 32
	// authorities of one kind.
	ErrTooManyAuthorities = errors.New("rotation: too many authorities")

	// ErrNoWITKey: [Manager.SignWITSVID] was called on a manager without
	// an active WIT key (Config.WITKeys is not set).
	ErrNoWITKey = errors.New("rotation: no active WIT key")
)

// snapshot is the state readers see, replaced whole on every change.
type snapshot struct {
	state  *state
	x509   *ca.X509Authority
	jwt    *ca.JWTAuthority
	wit    *ca.WITAuthority
	bundle *spiffebundle.Bundle
}

// Manager runs the X.509 CA and the JWT signing key of one trust domain and
// rotates them on its own.
//
// # Rotation
//
// Each authority (X.509 CA or JWT key) goes through three states. Let an
// active authority live from NotBefore to NotAfter, its life L:
//
//   - at NotBefore + PrepareFraction*L (default: half its life) the next
//     authority is prepared: its key is generated, its certificate signed, and
//     it is published in the bundle at once, so that relying parties learn it
//     before it signs anything;
//   - at NotBefore + ActivateFraction*L (default: 5/6 of its life), or earlier
//     when less than the SVID TTL of its kind remains so that SVIDs are never
//     cut short (but never before the prepare threshold), the prepared authority
//     becomes active and the active one becomes old;
//   - an old authority stays in the bundle until its NotAfter, since nothing
//     it signed outlives it; then it is dropped from the bundle and the
//     journal, and its key is destroyed when the KeyManager is a
//     [ca.KeyDestroyer].
//
// When no valid authority is active (first start, or a manager that was down
// past the expiry), one is activated at once: the prepared one if any, else a
// new one, which then has had no time to propagate. A manager that was down
// between the two thresholds likewise activates the authority it prepares on
// waking without propagation time. The thresholds are those of SPIRE.
//
// The bundle holds the roots of all X.509 CAs (their self-signed
// certificates, or the upstream roots) and the keys of all JWT keys; its
// spiffe_sequence increases by one whenever that content changes.
//
// # Persistence
//
// Every change is written to the Journal before it is used: a CA signs
// nothing, and a bundle is shown to nobody, until the journal recording it is
// durable. A crash thus never loses an authority that signed something.
//
// # Concurrency
//
// Getters read an immutable snapshot without locking and are cheap enough
// for TLS callbacks. Changes (Rotate, Run and the operator actions) are
// serialised by a mutex held across key generation, upstream calls and
// journal writes: serialising them is the point. All methods are safe for
// concurrent use. The Manager owns no goroutine; the caller runs [Manager.Run].
type Manager struct {
	td     spiffeid.TrustDomain
	cfg    Config
	keys   ca.KeyManager
	jrnl   Journal
	now    func() time.Time
	log    *slog.Logger
	wakeCh chan struct{}

	mu   sync.Mutex // serialises changes
	snap atomic.Pointer[snapshot]

	subs broadcast.Hub
}

// New loads the journal, restores the authorities it records, and performs
// the rotation steps due now (creating the first authorities of a new trust
// domain). ctx bounds construction only.
//
// A journal that cannot be used fails with an error wrapping
// [ErrCorruptJournal]; a key the journal refers to that the KeyManager lacks
// fails with an error wrapping [ca.ErrKeyNotFound]. Neither is ever repaired by
// starting afresh.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if err := normalize(&cfg); err != nil {
		return nil, err
	}
	m := &Manager{
		td:     cfg.TrustDomain,
		cfg:    cfg,
		keys:   cfg.KeyManager,
		jrnl:   cfg.Journal,
		now:    cfg.Now,
		log:    cfg.Logger,
		wakeCh: make(chan struct{}, 1),
	}
	data, err := m.jrnl.Load(ctx)
	if err != nil {
		return nil, err
	}
	st := &state{}
	if data != nil {
		if st, err = decodeJournal(m.td, data); err != nil {
			return nil, err
		}
		for _, k := range kinds {
			for _, s := range st.slots[k] {
				if s.state == StateOld {
					continue
				}
				signer, err := m.keys.Key(ctx, s.keyID)
				if err != nil {
					return nil, fmt.Errorf("rotation: cannot restore %s %s: %w", k, s.id(), err)
				}
				if err := m.attach(k, s, signer); err != nil {
					return nil, fmt.Errorf("%w: %s %s: %w", ErrCorruptJournal, k, s.id(), err)
				}
			}
		}
		m.log.Info("journal loaded", "trust_domain", m.td.Name(), "bundle_sequence", st.seq)
	}
	m.snap.Store(m.newSnapshot(st))
	if err := m.Rotate(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func normalize(cfg *Config) error {
	if cfg.TrustDomain.IsZero() {
		return errors.New("rotation: trust domain is missing")
	}
	if cfg.KeyManager == nil {
		cfg.KeyManager = keymanager.NewMemory()
	}
	if cfg.Journal == nil {
		cfg.Journal = new(memoryJournal)
	}
	setDefault(&cfg.X509SVIDTTL, ca.DefaultX509SVIDTTL)
	setDefault(&cfg.JWTSVIDTTL, ca.DefaultJWTSVIDTTL)
	setDefault(&cfg.CATTL, ca.DefaultX509CATTL)
	setDefault(&cfg.JWTKeyTTL, cfg.CATTL)
	setDefault(&cfg.WITSVIDTTL, ca.DefaultWITSVIDTTL)
	setDefault(&cfg.WITKeyTTL, cfg.CATTL)
	setDefault(&cfg.RefreshHint, DefaultRefreshHint)
	if cfg.X509CAKeyAlgorithm == "" {
		cfg.X509CAKeyAlgorithm = ca.ECP256
	}
	if cfg.JWTKeyAlgorithm == "" {
		cfg.JWTKeyAlgorithm = ca.ECP256
	}
	if cfg.WITKeyAlgorithm == "" {
		cfg.WITKeyAlgorithm = ca.ECP256
	}
	if cfg.PrepareFraction == 0 {
		cfg.PrepareFraction = DefaultPrepareFraction
	}
	if cfg.ActivateFraction == 0 {
		cfg.ActivateFraction = DefaultActivateFraction
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.X509SVIDTTL < 0, cfg.JWTSVIDTTL < 0, cfg.CATTL < 0, cfg.JWTKeyTTL < 0, cfg.RefreshHint < 0,
		cfg.WITSVIDTTL < 0, cfg.WITKeyTTL < 0:
		return errors.New("rotation: negative duration in config")
	case cfg.CATTL <= cfg.X509SVIDTTL:
		return fmt.Errorf("rotation: CA TTL %v must exceed the X509-SVID TTL %v", cfg.CATTL, cfg.X509SVIDTTL)
	case cfg.JWTKeyTTL <= cfg.JWTSVIDTTL:
		return fmt.Errorf("rotation: JWT key TTL %v must exceed the JWT-SVID TTL %v", cfg.JWTKeyTTL, cfg.JWTSVIDTTL)
	case cfg.WITKeys && cfg.WITKeyTTL <= cfg.WITSVIDTTL:
		return fmt.Errorf("rotation: WIT key TTL %v must exceed the WIT-SVID TTL %v", cfg.WITKeyTTL, cfg.WITSVIDTTL)
	case !(0 < cfg.PrepareFraction && cfg.PrepareFraction < cfg.ActivateFraction && cfg.ActivateFraction < 1):
		return fmt.Errorf("rotation: fractions must satisfy 0 < prepare (%v) < activate (%v) < 1", cfg.PrepareFraction, cfg.ActivateFraction)
	}
	for _, alg := range []ca.KeyAlgorithm{cfg.X509CAKeyAlgorithm, cfg.JWTKeyAlgorithm, cfg.WITKeyAlgorithm} {
		switch alg {
		case ca.ECP256, ca.ECP384, ca.RSA2048, ca.RSA4096:
		default:
			return fmt.Errorf("rotation: unsupported key algorithm %q", alg)
		}
	}
	return nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func (m *Manager) newSnapshot(st *state) *snapshot {
	sn := &snapshot{state: st, bundle: buildBundle(m.td, st, m.cfg.RefreshHint)}
	if s := st.find(kindX509, StateActive); s != nil {
		sn.x509 = s.x509
	}
	if s := st.find(kindJWT, StateActive); s != nil {
		sn.jwt = s.jwt
	}
	if s := st.find(kindWIT, StateActive); s != nil {
		sn.wit = s.wit
	}
	return sn
}

var (
	_ ca.Authority        = (*Manager)(nil)
	_ ca.WITIssuer        = (*Manager)(nil)
	_ ca.KeyTaintReporter = (*Manager)(nil)
)

// X509Authority returns the active X.509 CA. Sign with it and let go: the
// next call may return another one after a rotation.
func (m *Manager) X509Authority() *ca.X509Authority { return m.snap.Load().x509 }

// JWTAuthority returns the active JWT key.
func (m *Manager) JWTAuthority() *ca.JWTAuthority { return m.snap.Load().jwt }

// WITAuthority returns the active WIT key, or nil without Config.WITKeys.
func (m *Manager) WITAuthority() *ca.WITAuthority { return m.snap.Load().wit }

// Bundle returns a copy of the trust domain's current bundle: the X.509
// roots, JWT keys and WIT keys of every prepared, active and old authority, with its
// sequence number and refresh hint.
func (m *Manager) Bundle() *spiffebundle.Bundle { return m.snap.Load().bundle.Clone() }

// SignX509SVID signs an X509-SVID with the active X.509 CA. A zero
// params.TTL means Config.X509SVIDTTL; the lifetime is capped at the CA's
// expiry.
func (m *Manager) SignX509SVID(ctx context.Context, params ca.X509SVIDParams) ([]*x509.Certificate, error) {
	if params.TTL == 0 {
		params.TTL = m.cfg.X509SVIDTTL
	}
	chain, err := m.X509Authority().SignX509SVID(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	return chain, nil
}

// SignJWTSVID signs a JWT-SVID with the active JWT key. A zero params.TTL
// means Config.JWTSVIDTTL; the lifetime is capped at the key's expiry.
func (m *Manager) SignJWTSVID(ctx context.Context, params ca.JWTSVIDParams) (string, error) {
	if params.TTL == 0 {
		params.TTL = m.cfg.JWTSVIDTTL
	}
	token, err := m.JWTAuthority().SignJWTSVID(ctx, params)
	if err != nil {
		return "", fmt.Errorf("rotation: %w", err)
	}
	return token, nil
}

// SignWITSVID signs a WIT-SVID with the active WIT key. A zero params.TTL
// means Config.WITSVIDTTL; the lifetime is capped at the key's expiry.
// Without Config.WITKeys it fails with [ErrNoWITKey].
func (m *Manager) SignWITSVID(ctx context.Context, params ca.WITSVIDParams) (string, error) {
	a := m.WITAuthority()
	if a == nil {
		return "", ErrNoWITKey
	}
	if params.TTL == 0 {
		params.TTL = m.cfg.WITSVIDTTL
	}
	token, err := a.SignWITSVID(ctx, params)
	if err != nil {
		return "", fmt.Errorf("rotation: %w", err)
	}
	return token, nil
}

// X509CAs describes the X.509 CAs, oldest first.
func (m *Manager) X509CAs() []AuthorityInfo { return m.infos(kindX509) }

// JWTKeys describes the JWT keys, oldest first.
func (m *Manager) JWTKeys() []AuthorityInfo { return m.infos(kindJWT) }

// WITKeys describes the WIT keys, oldest first.
func (m *Manager) WITKeys() []AuthorityInfo { return m.infos(kindWIT) }

func (m *Manager) infos(k kind) []AuthorityInfo {
	st := m.snap.Load().state
	out := make([]AuthorityInfo, 0, len(st.slots[k]))
	for _, s := range st.slots[k] {
		info := AuthorityInfo{
			ID: s.id(), KeyID: s.keyID, State: s.state, Tainted: s.tainted,
			NotBefore: s.notBefore, NotAfter: s.notAfter, PublicKey: s.pub,
		}
		if k == kindX509 {
			info.Certificate = s.chain[0]
			info.PublicKey = s.chain[0].PublicKey
		}
		out = append(out, info)
	}
	return out
}

// TaintedX509CAs returns the certificates of the tainted X.509 CAs. An SVID
// whose chain holds one of them should be replaced promptly.
func (m *Manager) TaintedX509CAs() []*x509.Certificate {
	var out []*x509.Certificate
	for _, s := range m.snap.Load().state.slots[kindX509] {
		if s.tainted {
			out = append(out, s.chain[0])
		}
	}
	return out
}

// TaintedJWTKeyIDs returns the kids of the tainted JWT keys, oldest
// first. A JWT-SVID signed by one of them should be replaced promptly.
func (m *Manager) TaintedJWTKeyIDs() []string { return m.taintedKIDs(kindJWT) }

// TaintedWITKeyIDs returns the kids of the tainted WIT keys, oldest
// first. A WIT-SVID signed by one of them should be replaced promptly.
func (m *Manager) TaintedWITKeyIDs() []string { return m.taintedKIDs(kindWIT) }

func (m *Manager) taintedKIDs(k kind) []string {
	var out []string
	for _, s := range m.snap.Load().state.slots[k] {
		if s.tainted {
			out = append(out, s.kid)
		}
	}
	return out
}

// Subscribe returns a channel that receives a value after every change of
// the bundle, of an active authority, or of the tainted authorities. The
// channel has capacity 1 and sends never block, so changes coalesce: on a
// receive, read the current values with the getters. Call unsubscribe when
// done; it is idempotent. The channel is never closed.
func (m *Manager) Subscribe() (updates <-chan struct{}, unsubscribe func()) {
	return m.subs.Subscribe()
}

func (m *Manager) notify() { m.subs.Notify() }

// Run performs rotation steps as they fall due, until ctx is done; it then
// returns ctx.Err(). It sleeps until the next threshold (at most a minute,
// so that clock changes are noticed) and wakes early after an operator
// action. A failed step is logged and retried after a second, then after
// twice as long at each failure in a row, up to a minute: the step may be
// due long before (a full disk keeps the next CA from being prepared while
// the active one runs out), and must not wait a minute once the cause is
// gone. Several concurrent Runs are harmless but useless.
func (m *Manager) Run(ctx context.Context) error {
	retry := minRetryWait
	for {
		wait := maxRunWait
		if err := m.Rotate(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.log.Error("rotation failed", "trust_domain", m.td.Name(), "err", err, "retry_in", retry)
			wait, retry = retry, min(2*retry, maxRunWait)
		} else {
			retry = minRetryWait
			if d := m.nextRotation().Sub(m.now()); d < wait {
				wait = max(d, 0)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		case <-m.wakeCh:
			timer.Stop()
		}
	}
}

// NextRotation returns when the next rotation step falls due: a prepare, an
// activation, or an expiry.
func (m *Manager) NextRotation() time.Time { return m.nextRotation() }

func (m *Manager) nextRotation() time.Time {
	st := m.snap.Load().state
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, k := range kinds {
		if k == kindWIT && !m.cfg.WITKeys {
			for _, s := range st.slots[k] {
				consider(s.notAfter) // retired: dropped when expired
			}
			continue
		}
		active := st.find(k, StateActive)
		if active == nil {
			return m.now()
		}
		if st.find(k, StatePrepared) == nil {
			consider(m.prepareAt(active))
		} else {
			consider(m.activateAt(k, active))
		}
		for _, s := range st.slots[k] {
			consider(s.notAfter)
		}
	}
	return next
}

func (m *Manager) wake() {
	select {
	case m.wakeCh <- struct{}{}:
	default:
	}
}
