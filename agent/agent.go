package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Defaults of Config.
const (
	DefaultRetryMin = 500 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
)

// Config configures New. The struct is copied.
type Config struct {
	// TrustDomain is the agent's trust domain. Required.
	TrustDomain spiffeid.TrustDomain

	// Servers are the addresses ("host:port") of the issuing servers, at
	// least one. The agent uses the first that answers and fails over to
	// the next.
	Servers []string

	// TrustBundle holds the X.509 authorities that verify the servers on
	// the first attestation. Required unless the data directory holds a
	// saved SVID and bundle, or InsecureBootstrap is set.
	TrustBundle *x509bundle.Bundle

	// InsecureBootstrap attests without verifying the server and trusts
	// the bundle it returns. For trying things out only.
	InsecureBootstrap bool

	// NodeAttestor proves what node this is (join token, x509pop).
	// Required.
	NodeAttestor attest.NodeAttestorClient

	// WorkloadAttestor describes local callers of the Workload API; on
	// Linux, attest/unix. Required.
	WorkloadAttestor attest.WorkloadAttestor

	// DataDir keeps the agent's SVID, key (mode 0600) and bundle, so that
	// a restarted agent reuses them instead of attesting again. Empty keeps
	// nothing on disk.
	DataDir string

	// RetryMin and RetryMax bound the jittered exponential backoff between
	// attempts to reach the servers. Zero means DefaultRetryMin (0.5 s) and
	// DefaultRetryMax (30 s).
	RetryMin, RetryMax time.Duration

	// Logger receives the agent's events. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Agent is a node agent: it holds an agent SVID from its server, keeps a
// replica of the registration entries it is authorized for (pushed by the
// server), has an X509-SVID signed for each of them ahead of need, and
// serves them to local workloads over the Workload API. While the servers
// are unreachable it keeps serving what it holds, and reconnects with
// backoff.
//
// It owns background goroutines; Close stops them.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	trust *trust
	store *memstore.Store
	iss   *issuer.Issuer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	key     crypto.Signer
	svid    *nodeapi.AgentSVID
	renewAt time.Time // half the remaining life when the SVID was installed
	cli     *nodeapi.Client
	renewed chan struct{} // signalled after the client is replaced

	synced    chan struct{} // closed after the first sync
	syncOnce  sync.Once
	lastSync  atomic.Int64 // unix nanoseconds of the last sync message
	connected atomic.Bool
	syncs     atomic.Uint64
}

// New gives the agent its SVID, from the data directory if a valid one is
// saved there, else by attesting to a server (retrying until ctx is done),
// then starts syncing in the background. It returns once the agent holds
// an SVID; Synced tells when the entries have arrived.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("agent: Config.TrustDomain is required")
	case len(cfg.Servers) == 0:
		return nil, errors.New("agent: Config.Servers needs at least one address")
	case cfg.NodeAttestor == nil:
		return nil, errors.New("agent: Config.NodeAttestor is required")
	case cfg.WorkloadAttestor == nil:
		return nil, errors.New("agent: Config.WorkloadAttestor is required")
	case cfg.RetryMin < 0 || cfg.RetryMax < 0:
		return nil, errors.New("agent: retry bounds must not be negative")
	}
	a := &Agent{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		store:   memstore.New(memstore.Config{}),
		renewed: make(chan struct{}, 1),
		synced:  make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.cfg.RetryMin == 0 {
		a.cfg.RetryMin = DefaultRetryMin
	}
	if a.cfg.RetryMax == 0 {
		a.cfg.RetryMax = DefaultRetryMax
	}
	a.cfg.RetryMax = max(a.cfg.RetryMax, a.cfg.RetryMin)

	key, svid, err := loadState(cfg.DataDir, cfg.TrustDomain)
	switch {
	case err == nil && a.now().Before(leafOf(svid).NotAfter):
		a.log.Info("reusing the saved agent SVID", "agent", svid.ID.String(), "not_after", leafOf(svid).NotAfter)
	case err == nil:
		a.log.Warn("the saved agent SVID has expired; attesting again", "agent", svid.ID.String())
		key, svid, err = nil, nil, errNoState
	case !errors.Is(err, errNoState):
		a.log.Warn("ignoring the saved agent state", "err", err)
	}
	if svid == nil {
		if key, svid, err = a.attestLoop(ctx, cfg.TrustBundle); err != nil {
			return nil, err
		}
	}
	a.trust = newTrust(svid.Bundle)
	if err := a.setSVID(key, svid); err != nil {
		return nil, err
	}
	a.iss, err = issuer.New(ctx, issuer.Config{
		Authority:  a.trust,
		Registry:   a.store,
		Attestor:   cfg.WorkloadAttestor,
		Federation: a.trust,
		Signer:     remoteSigner{a},
		PreMint:    true,
		Logger:     a.log,
		Now:        a.now,
	})
	if err != nil {
		a.client().Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.wg.Go(a.syncLoop)
	a.wg.Go(a.renewLoop)
	return a, nil
}

// ID returns the agent's SPIFFE ID.
func (a *Agent) ID() spiffeid.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.svid.ID
}

// SVID returns the agent's current X509-SVID.
func (a *Agent) SVID() *x509svid.SVID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &x509svid.SVID{ID: a.svid.ID, Certificates: a.svid.Certificates, PrivateKey: a.key}
}

// GetX509SVID implements x509svid.Source with the agent's own SVID, which
// authenticates it to its servers.
func (a *Agent) GetX509SVID() (*x509svid.SVID, error) { return a.SVID(), nil }

// Bundle returns the trust domain's bundle as the agent last received it.
func (a *Agent) Bundle() *spiffebundle.Bundle { return a.trust.Bundle() }

// Synced returns a channel closed once the first sync with a server has
// completed.
func (a *Agent) Synced() <-chan struct{} { return a.synced }

// Issuer returns the Workload API handler, for serving it in other ways
// than Start.
func (a *Agent) Issuer() *issuer.Issuer { return a.iss }

// Start serves the Workload API on a unix socket at path (see
// issuer.Issuer.Start) until Close, and returns its address.
func (a *Agent) Start(path string, mode fs.FileMode) (string, error) {
	return a.iss.Start(path, mode)
}

// Serve serves the Workload API on lis until ctx is done.
func (a *Agent) Serve(ctx context.Context, lis net.Listener) error {
	return a.iss.Serve(ctx, lis)
}

// Stats is a snapshot of the agent's state, for health checks and metrics.
type Stats struct {
	// Entries is the number of registration entries the agent holds.
	Entries int
	// Connected says whether the entry stream to a server is open.
	Connected bool
	// LastSync is when the last sync message arrived; zero if none yet.
	LastSync time.Time
	// Syncs counts sync messages received.
	Syncs uint64
	// SVIDExpiresAt is the expiry of the agent's own SVID.
	SVIDExpiresAt time.Time
}

// Stats returns a snapshot of the agent's state.
func (a *Agent) Stats() Stats {
	st := Stats{
		Entries:   len(a.store.Revisions()),
		Connected: a.connected.Load(),
		Syncs:     a.syncs.Load(),
	}
	if ns := a.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	a.mu.Lock()
	st.SVIDExpiresAt = leafOf(a.svid).NotAfter
	a.mu.Unlock()
	return st
}

// Healthy returns nil if the agent can serve workloads: it holds an
// unexpired SVID and has synced at least once. The server may be
// unreachable for a while; workloads are then served from the cache.
func (a *Agent) Healthy() error {
	st := a.Stats()
	switch {
	case !a.now().Before(st.SVIDExpiresAt):
		return errors.New("agent: the agent SVID has expired")
	case st.LastSync.IsZero():
		return errors.New("agent: not synced with a server yet")
	}
	return nil
}

// Close stops the agent's goroutines and Workload API servers and closes
// its connections.
func (a *Agent) Close() error {
	a.once.Do(func() {
		a.cancel()
	})
	a.wg.Wait()
	err := a.iss.Close()
	a.client().Close()
	return err
}

func (a *Agent) client() *nodeapi.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cli
}

func (a *Agent) clientConfig(bundle x509bundle.Source) nodeapi.ClientConfig {
	return nodeapi.ClientConfig{
		Servers:           a.cfg.Servers,
		TrustDomain:       a.cfg.TrustDomain,
		Bundle:            bundle,
		InsecureBootstrap: a.cfg.InsecureBootstrap,
		Logger:            a.log,
	}
}

// setSVID installs a new agent SVID: saves it, and replaces the client so
// that the next connections present it. The old client is closed, which
// ends the entry stream on it; the sync loop reconnects at once.
func (a *Agent) setSVID(key crypto.Signer, svid *nodeapi.AgentSVID) error {
	if err := saveState(a.cfg.DataDir, key, svid); err != nil {
		return err
	}
	now := a.now()
	start := leafOf(svid).NotBefore
	if now.After(start) {
		start = now // NotBefore is backdated for clock skew
	}
	a.mu.Lock()
	a.key, a.svid = key, svid
	a.renewAt = start.Add(leafOf(svid).NotAfter.Sub(start) / 2)
	old := a.cli
	a.mu.Unlock()
	cli, err := nodeapi.Dial(a.clientConfig(a.trust), a)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.cli = cli
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	select {
	case a.renewed <- struct{}{}:
	default:
	}
	return nil
}

// attestLoop attests, retrying with backoff until it succeeds, the server
// refuses the evidence for good, or ctx is done.
func (a *Agent) attestLoop(ctx context.Context, bundle *x509bundle.Bundle) (crypto.Signer, *nodeapi.AgentSVID, error) {
	var src x509bundle.Source
	if bundle != nil {
		src = bundle
	} else if a.trust != nil {
		src = a.trust
	}
	if src == nil && !a.cfg.InsecureBootstrap {
		return nil, nil, errors.New("agent: a trust bundle is needed to attest (or InsecureBootstrap, to try things out)")
	}
	cfg := a.clientConfig(src)
	b := a.backoff()
	for {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: generating the agent key: %w", err)
		}
		svid, err := nodeapi.Attest(ctx, cfg, a.cfg.NodeAttestor, key)
		if err == nil {
			a.log.Info("attested", "agent", svid.ID.String(), "not_after", leafOf(svid).NotAfter)
			return key, svid, nil
		}
		if nodeapi.IsRefused(err) {
			return nil, nil, fmt.Errorf("agent: the server refused attestation: %w", err)
		}
		if errors.Is(err, nodeapi.ErrNodeAttestor) {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
		a.log.Warn("attestation failed; retrying", "err", err)
		if !b.wait(ctx) {
			return nil, nil, fmt.Errorf("agent: attesting: %w (last error: %w)", ctx.Err(), err)
		}
	}
}

// syncLoop keeps the entry stream open, reconnecting with backoff.
func (a *Agent) syncLoop() {
	b := a.backoff()
	for a.ctx.Err() == nil {
		got := false
		err := a.client().Sync(a.ctx, a.store.Revisions(), func(u nodeapi.Update) error {
			got = true
			a.connected.Store(true)
			return a.apply(u)
		})
		a.connected.Store(false)
		if a.ctx.Err() != nil {
			return
		}
		if got {
			b.reset()
		}
		if nodeapi.IsRefused(err) {
			a.log.Error("the server refused the agent", "err", err)
			a.recover()
		} else {
			a.log.Warn("entry stream ended; reconnecting", "err", err)
		}
		select {
		case <-a.renewed: // a new client: reconnect at once
			continue
		default:
		}
		if !b.wait(a.ctx) {
			return
		}
	}
}

// apply records one sync update.
func (a *Agent) apply(u nodeapi.Update) error {
	if err := a.store.Replicate(a.ctx, u.Upserts, u.Deleted); err != nil {
		return fmt.Errorf("agent: applying the entries from the server: %w", err)
	}
	a.trust.set(u.Bundle, u.FederatedSet, u.FederatedBundles, u.TaintedX509CAs, u.ActiveX509CA)
	if u.Bundle != nil {
		if err := saveBundle(a.cfg.DataDir, u.Bundle); err != nil {
			a.log.Warn("saving the bundle failed", "err", err)
		}
	}
	if err := a.iss.Sync(a.ctx); err != nil {
		return err
	}
	a.lastSync.Store(a.now().UnixNano())
	a.syncs.Add(1)
	a.syncOnce.Do(func() {
		a.log.Info("synced with the server", "entries", len(a.store.Revisions()))
		close(a.synced)
	})
	return nil
}

// renewLoop renews the agent SVID at half its life.
func (a *Agent) renewLoop() {
	b := a.backoff()
	for {
		a.mu.Lock()
		due := a.renewAt
		a.mu.Unlock()
		t := time.NewTimer(max(due.Sub(a.now()), 0))
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := a.renew(); err != nil {
			a.log.Warn("renewing the agent SVID failed", "err", err)
			// An expired SVID fails the TLS handshake, which looks like an
			// unreachable server rather than a refusal: only attesting
			// again can help then.
			if nodeapi.IsRefused(err) || !a.now().Before(a.Stats().SVIDExpiresAt) {
				a.recover()
			}
			if !b.wait(a.ctx) {
				return
			}
			continue
		}
		b.reset()
	}
}

func (a *Agent) renew() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("agent: generating the agent key: %w", err)
	}
	ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
	defer cancel()
	svid, err := a.client().RenewAgent(ctx, key)
	if err != nil {
		return err
	}
	if svid.ID != a.ID() {
		return fmt.Errorf("agent: renewal returned %s, not %s", svid.ID, a.ID())
	}
	a.log.Info("agent SVID renewed", "serial", leafOf(svid).SerialNumber.Text(16), "not_after", leafOf(svid).NotAfter)
	return a.setSVID(key, svid)
}

// recover attests again after the server refused the agent (its SVID
// expired while the server was away, or it was evicted), when the node
// attestor allows; a join token cannot be used twice, so such an agent
// needs a new one and keeps serving what it holds meanwhile.
func (a *Agent) recover() {
	ctx, cancel := context.WithTimeout(a.ctx, time.Minute)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return
	}
	svid, err := nodeapi.Attest(ctx, a.clientConfig(a.trust), a.cfg.NodeAttestor, key)
	if err != nil {
		a.log.Error("attesting again failed; serving cached SVIDs until they expire", "err", err)
		return
	}
	if svid.ID != a.ID() {
		a.log.Warn("attested again under another ID", "old", a.ID().String(), "new", svid.ID.String())
	}
	a.trust.set(svid.Bundle, false, nil, a.trust.TaintedX509CAs(), nil)
	if err := a.setSVID(key, svid); err != nil {
		a.log.Error("installing the new agent SVID failed", "err", err)
		return
	}
	a.log.Info("attested again", "agent", svid.ID.String())
}

// backoff is a jittered exponential backoff.
type backoff struct {
	min, max, cur time.Duration
}

func (a *Agent) backoff() *backoff {
	return &backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax, cur: a.cfg.RetryMin}
}

func (b *backoff) reset() { b.cur = b.min }

// wait sleeps for the current delay with ±50% jitter, doubles it, and
// reports false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.cur/2 + time.Duration(mrand.Int64N(int64(b.cur)+1))
	b.cur = min(b.cur*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
