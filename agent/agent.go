package agent

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/agent/internal/replica"
	"github.com/spiffekit/spiffekit/agent/internal/saved"
	"github.com/spiffekit/spiffekit/agent/internal/signer"
	"github.com/spiffekit/spiffekit/agent/internal/trust"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// Defaults of Config.
const (
	DefaultRetryMin = 500 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
	// DefaultX509SVIDCacheMaxSize bounds the entries whose X509-SVIDs an
	// agent keeps ahead of need (Config.X509SVIDCacheMaxSize).
	DefaultX509SVIDCacheMaxSize = 1000
)

// ErrNoNodeAttestor reports that the agent must attest but has no node
// attestor: Config.NodeAttestor is nil and the data directory holds no
// usable agent SVID. New returns it when that is so from the start; Run,
// when the saved SVID expired before Run began. An agent that must attest
// again later (its server refused it) logs it and keeps serving the SVIDs
// it holds until they expire. Test with [errors.Is].
var ErrNoNodeAttestor = errors.New("agent: no node attestor")

// Config configures New. The struct is copied.
type Config struct {
	// TrustDomain is the agent's trust domain. Required.
	TrustDomain spiffeid.TrustDomain

	// Servers are the addresses ("host:port") of the issuing servers, at
	// least one. The agent uses the first that answers, and moves to the
	// next when one cannot be reached, and when an attestation, a renewal
	// or the entry stream fails on the one in use: a server may answer and yet be
	// unable to serve (cut off from its database). Once it has moved off
	// a server, it leaves that one out (while there are others) until it
	// moves on again, so that a next server slower to answer than the one
	// that failed is not passed over for it.
	Servers []string

	// TrustBundle holds the X.509 authorities that verify the servers on
	// the first attestation. Required unless the data directory holds a
	// saved SVID and bundle, or InsecureBootstrap is set.
	TrustBundle *x509bundle.Bundle

	// InsecureBootstrap has the first attestation proceed without
	// verifying the server, and trust the bundle it returns. For trying
	// things out only. Every later connection verifies the server with
	// that bundle.
	InsecureBootstrap bool

	// NodeAttestor proves what node this is (join token, x509pop) when the
	// agent attests: the first time, and again if its server refuses it.
	// Nil is allowed when the data directory holds a usable agent SVID;
	// see ErrNoNodeAttestor.
	NodeAttestor attest.NodeAttestorClient

	// WorkloadAttestors describe the local callers of the Workload API; on
	// Linux, attest/unix, and any others whose selectors the registration
	// entries use. At least one, none nil. Their selectors are combined
	// as attest.Combine does: a caller gets the union of every attestor's
	// selectors, and fails attestation when any of them rejects it or
	// fails.
	WorkloadAttestors []attest.WorkloadAttestor

	// Listener, when not nil, is where Run serves the Workload API (for a
	// unix socket, see endpoint.ListenUnix), once the agent holds its SVID;
	// until then, connections wait. The agent owns it from New: Run closes
	// it when it returns, Close does if Run never ran, and New does when it
	// fails. Nil serves
	// nothing; Handler then gives the handler to serve with an
	// endpoint.Server of the caller's.
	Listener net.Listener

	// DataDir keeps the agent's SVID, key (mode 0600) and bundle, so that
	// a restarted agent reuses them instead of attesting again. Empty keeps
	// nothing on disk.
	//
	// New creates it (mode 0700) if missing and refuses one that group or
	// others may write to, or that is owned by another uid than the
	// agent's and root, since its bundle is the agent's trust anchor. New
	// refuses, too, a saved file (agent-svid.pem, agent-key.pem or the
	// KeyStore's key file, bundle.json) that another uid than the agent's
	// owns, that group or others may write to, or, the key, read: the
	// error names the file and what is wrong, and nothing is attested
	// until it is put right. Saved
	// state that does not hold together (a key of another SVID, a bundle
	// that does not verify it) is ignored with a warning instead. New
	// also locks it for this agent alone (an advisory flock on DataDir/lock,
	// which names the holder's pid), until Close: a second agent on the
	// same directory fails at New with "agent: data directory /x is in use
	// by pid 1234", before it attests.
	//
	// Beside its own SVID, the agent keeps there what it serves its
	// workloads (workload-svids.bin, mode 0600: the entries it is
	// authorized for, the X509-SVID and private key it holds for each, the
	// WIT-SVIDs it holds with their keys (with WITSVIDs), the federated
	// bundles, and the X.509 CAs and JWT and WIT keys the server last
	// named as tainted), written atomically at most every few seconds
	// while it changes, a fraction of a second after a change of the
	// taints (so that a crash loses none), and when Run returns. An agent
	// started again with the saved agent SVID serves them at once, before
	// it reaches a server and while every server is away, each until it
	// expires (never after) and never one a saved tainted CA or key signed
	// (it has a new one signed once a server answers), and moves to what a
	// server sends once it syncs. Until then it serves what it saved: an
	// SVID whose entry was deleted while the agent was down is served until
	// the agent syncs. A workloads file that another
	// uid owns, that others may read or change, that was saved by another
	// agent, that does not parse, whose digest does not match its content,
	// or whose SVIDs do not check out (key, SPIFFE ID, chain to the saved
	// bundle) is refused with an error in the log, and the agent starts
	// without it, as if it had saved nothing.
	//
	// An agent upgraded from a release that saved them in
	// workload-svids.jsonl (version 1) reads that file once, when there is
	// no workload-svids.bin, with the same checks on the file, and each of
	// its SVIDs checked in full: an entry the registry would not take now,
	// or an SVID that does not check out, is left out (logged), and the
	// rest served. It then writes workload-svids.bin, and removes the file
	// of version 1 once the new one is durably written.
	DataDir string

	// RetryMin and RetryMax bound the jittered exponential backoff between
	// attempts to reach the servers. Zero means DefaultRetryMin (0.5 s) and
	// DefaultRetryMax (30 s). Renewals of the agent SVID wait less as its
	// expiry nears: at most a quarter of the time it has left.
	RetryMin, RetryMax time.Duration

	// Logger receives the agent's events. Nil discards them.
	Logger *slog.Logger

	// IssuerObserver, when not nil, is told of every signing request the
	// agent makes of its servers and every attestation of a Workload API
	// caller (see issuer.Observer). Nil costs nothing.
	IssuerObserver issuer.Observer

	// APIObserver, when not nil, is told of every Workload API call the
	// agent serves on Listener (see endpoint.Observer), and of every SDS
	// call with SDS. Nil costs nothing.
	APIObserver endpoint.Observer

	// SDS, when not nil, serves Envoy's Secret Discovery Service (xDS v3)
	// on Listener beside the Workload API, as SPIRE's agent does (see
	// workloadapi/endpoint/sds): the same callers, attested the same way,
	// get the same SVIDs and bundles. Its Handler and Logger are the
	// agent's, its Observer APIObserver. Nil serves the Workload API
	// alone.
	SDS *sds.Config

	// RateLimit, when not nil, bounds how often each local caller (each
	// uid) may call the Workload API on Listener, so that one noisy
	// workload cannot starve the others: a caller over its limit gets
	// ResourceExhausted before it is attested (see endpoint.RateLimit). Nil
	// sets no limit.
	RateLimit *endpoint.RateLimit

	// WITSVIDs, when true, serves the Workload API's WIT-SVID profile (an
	// incubating standard) on Listener: FetchWITBundles, and FetchWITSVID,
	// whose WIT-SVIDs the agent has its server sign when a workload first
	// asks, for a key the agent generates (see issuer.Issuer.SubscribeWIT),
	// cached per entry and renewed at half life. The server must issue
	// them (server.Config.WITSVIDs): otherwise FetchWITSVID answers
	// Unimplemented, and FetchWITBundles PermissionDenied (the bundle
	// has no WIT key). False (the default) answers both Unimplemented.
	//
	// With DataDir, the WIT-SVIDs the agent holds are saved with the
	// X509-SVIDs (see DataDir), and an agent started again while every
	// server is away serves each until it expires, while the bundle it
	// saved holds the key that signed it (a WIT key revoked meanwhile is
	// not trusted) and does not name it as tainted, after checking its
	// signature with that key. A workloads file holding WIT-SVIDs is of
	// version 3, and one holding taints of version 4, which agents of the
	// releases before (which read version 2, or 2 and 3) refuse, starting
	// without it.
	WITSVIDs bool

	// KeyStore makes the agent's own private key, the key of its agent
	// SVID, and keeps it in DataDir: a new key for each attestation and
	// each renewal. Nil makes ECDSA P-256 keys in memory, kept in
	// DataDir/agent-key.pem (PKCS #8, mode 0600). Package
	// ca/keymanager/tpm's AgentKeys has a TPM make and use the key, which
	// DataDir/agent-key.tpmkey keeps as a blob only that TPM can load. The
	// agent does not close it.
	//
	// A saved key that the KeyStore cannot load (a blob of another TPM,
	// or altered) is refused with an error in the log naming the file and
	// why, and the agent attests again, as with any saved state that does
	// not hold together; without a node attestor, New fails with
	// ErrNoNodeAttestor and that error. A KeyStore whose key file is not
	// there (the agent used another KeyStore before) leaves the saved SVID
	// without its key, which is ignored the same way: the agent attests
	// again.
	KeyStore KeyStore

	// MintOnDemand has the agent hold X509-SVIDs only for the entries of
	// the workloads connected to the Workload API, each minted on its
	// workload's first request and dropped at its refresh time once no
	// connected workload holds it, instead of one for every entry ahead
	// of need (the default). It trades a workload's first request, which then waits
	// for its server to sign, for memory: a node with many entries of
	// which few run at once holds only those (see docs/PERFORMANCE.md).
	MintOnDemand bool

	// X509SVIDCacheMaxSize bounds the entries whose X509-SVIDs the agent
	// keeps ahead of need (without MintOnDemand): when it holds more
	// entries, those first by entry ID are minted ahead, and the others
	// when a workload asks. The SVIDs of connected workloads are kept
	// whatever the bound. Zero means DefaultX509SVIDCacheMaxSize (1,000,
	// SPIRE's default for its agent's key of the same name).
	X509SVIDCacheMaxSize int

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Agent is a node agent: it holds an agent SVID from its server, keeps a
// replica of the registration entries it is authorized for (pushed by the
// server), has an X509-SVID signed for each of them ahead of need (or,
// with Config.MintOnDemand, for those of the workloads connected), and
// serves them to local workloads over the Workload API. While the servers
// are unreachable it keeps serving what it holds, and reconnects with
// backoff.
//
// New starts nothing; Run does the work until its ctx ends. The methods of
// an Agent are safe for concurrent use.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	trust *trust.State
	store *replica.Entries
	iss   *issuer.Issuer
	api   *endpoint.Server // nil without Config.Listener
	lock  *dirlock.Lock    // on Config.DataDir; nil without one
	keys  KeyStore         // Config.KeyStore, or softwareKeys
	files datadir.KeyFiles // the files of keys in Config.DataDir

	saved    *saved.Workloads // in Config.DataDir; nil without one
	restored bool             // New restored saved workload SVIDs; set before Run

	life      *lifecycle.Guard // Run once, not after Close
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	key      crypto.Signer
	keyData  []byte             // what keeps key, from KeyStore.GenerateKey
	svid     *nodeapi.AgentSVID // nil until the agent holds one
	renewAt  time.Time          // half the remaining life when the SVID was installed
	unsaved  bool               // svid could not be saved in Config.DataDir yet
	cli      *nodeapi.Client    // while Run runs
	first    int                // index in Config.Servers of the server tried first
	movedOff bool               // failOver moved first on: the server before it is left out
	conns    uint64             // connections the client moved to (see generation)
	moving   sync.Mutex         // held by failOver, so that two loops do not both move
	attested chan struct{}      // closed once svid is set

	synced    chan struct{} // closed after the first sync
	syncOnce  sync.Once
	lastSync  atomic.Int64 // unix nanoseconds of the last sync message
	connected atomic.Bool
	syncs     atomic.Uint64
}

// New checks cfg and prepares the agent: it reads the SVID saved in the
// data directory, if a valid one is there, and builds the Workload API
// handler. It starts nothing and makes no connection: Run attests (unless
// the saved SVID is reused), syncs and serves. It fails with an error
// wrapping ErrNoNodeAttestor when the agent would have to attest without a
// node attestor. ctx bounds construction only. When it fails, it closes
// Config.Listener. It opens and locks Config.DataDir (see there), which
// Close releases.
func New(ctx context.Context, cfg Config) (_ *Agent, err error) {
	if cfg.Listener != nil {
		defer func() {
			if err != nil {
				_ = cfg.Listener.Close() // the error New returns says more
			}
		}()
	}
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("agent: Config.TrustDomain is required")
	case len(cfg.Servers) == 0:
		return nil, errors.New("agent: Config.Servers needs at least one address")
	case len(cfg.WorkloadAttestors) == 0:
		return nil, errors.New("agent: Config.WorkloadAttestors needs at least one attestor")
	case slices.Contains(cfg.WorkloadAttestors, nil):
		return nil, errors.New("agent: Config.WorkloadAttestors holds a nil attestor")
	case cfg.RetryMin < 0 || cfg.RetryMax < 0:
		return nil, errors.New("agent: retry bounds must not be negative")
	case cfg.X509SVIDCacheMaxSize < 0:
		return nil, errors.New("agent: Config.X509SVIDCacheMaxSize must not be negative (MintOnDemand keeps none ahead of need)")
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.WorkloadAttestors = slices.Clone(cfg.WorkloadAttestors)
	keys := cfg.KeyStore
	if keys == nil {
		keys = softwareKeys{}
	}
	files, err := keyFilesOf(keys)
	if err != nil {
		return nil, err
	}
	var lock *dirlock.Lock
	if cfg.DataDir != "" {
		if lock, err = datadir.Open(cfg.DataDir); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				lock.Close()
			}
		}()
	}
	a := &Agent{
		lock:  lock,
		keys:  keys,
		files: files,
		cfg:   cfg,
		log:   cfg.Logger,
		now:   cfg.Now,
		store: replica.New(),
		life: lifecycle.NewGuard(lifecycle.Once,
			errors.New("agent: closed"), errors.New("agent: Run called twice")),
		attested: make(chan struct{}),
		synced:   make(chan struct{}),
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

	bundle, err := a.loadState(ctx)
	if err != nil {
		return nil, err
	}
	a.trust = trust.New(bundle)
	a.iss, err = issuer.New(ctx, issuer.Config{
		Trust:        a.trust,
		Signer:       signer.New(a.client, a.log),
		Registry:     a.store,
		Attestor:     attest.Combine(cfg.WorkloadAttestors...),
		Federation:   a.trust,
		PreMint:      !cfg.MintOnDemand,
		PreMintLimit: cmp.Or(cfg.X509SVIDCacheMaxSize, DefaultX509SVIDCacheMaxSize),
		Logger:       a.log,
		Now:          a.now,
		Observer:     cfg.IssuerObserver,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.mu.Lock()
	reused := a.svid != nil
	a.mu.Unlock()
	if cfg.DataDir != "" {
		a.saved = saved.New(saved.Config{Dir: cfg.DataDir, TrustDomain: cfg.TrustDomain, WITSVIDs: cfg.WITSVIDs,
			Issuer: a.iss, Trust: a.trust, Entries: a.store, ID: a.ID, Now: a.now, Logger: a.log,
			SaveInterval: workloadsSaveInterval, ReleaseAfterSave: releaseAfterSave})
		if reused {
			a.restored = a.saved.Restore(ctx, a.ID())
		}
	}
	if cfg.Listener != nil {
		ecfg := endpoint.Config{Handler: a.Handler(), Logger: a.log, Observer: cfg.APIObserver, RateLimit: cfg.RateLimit, WIT: cfg.WITSVIDs}
		if cfg.SDS != nil {
			scfg := *cfg.SDS
			scfg.Handler, scfg.Logger, scfg.Observer = ecfg.Handler, a.log, cfg.APIObserver
			srv, err := sds.New(scfg)
			if err != nil {
				return nil, fmt.Errorf("agent: %w", err)
			}
			ecfg.Register, ecfg.MaxRequestSize = srv.Register, sds.MaxRequestSize
		}
		if a.api, err = endpoint.New(ecfg); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return a, nil
}

// loadState takes the agent SVID saved in the data directory, if a valid
// one is there, and returns the bundle the agent starts with: the saved
// one with a valid SVID, else Config.TrustBundle, else the saved one (which
// verified the expired SVID), else an empty bundle (InsecureBootstrap).
func (a *Agent) loadState(ctx context.Context) (*spiffebundle.Bundle, error) {
	td := a.cfg.TrustDomain
	key, keyData, svid, err := datadir.LoadState(ctx, a.cfg.DataDir, td, a.keys, a.files)
	var saved *spiffebundle.Bundle
	var ignored error // why the saved state was ignored
	switch {
	case err == nil && a.now().Before(leafOf(svid).NotAfter):
		a.log.Info("reusing the saved agent SVID", "agent", svid.ID.String(), "not_after", leafOf(svid).NotAfter)
		a.installLocked(key, keyData, svid)
		close(a.attested)
		return svid.Bundle, nil
	case err == nil:
		a.log.Warn("the saved agent SVID has expired; attesting again", "agent", svid.ID.String())
		saved = svid.Bundle
	case errors.Is(err, datadir.ErrUnsafeFile):
		// Others could have put what it holds there: neither trusted nor
		// ignored (the agent would attest again, over a state someone
		// tampered with), but refused until the operator puts it right.
		return nil, err
	case !errors.Is(err, datadir.ErrNoState):
		a.log.Warn("ignoring the saved agent state", "err", err)
		ignored = err
	}
	switch {
	case a.cfg.NodeAttestor == nil && ignored != nil:
		return nil, fmt.Errorf("%w, and the agent SVID saved in the data directory is not usable: %w", ErrNoNodeAttestor, ignored)
	case a.cfg.NodeAttestor == nil:
		return nil, fmt.Errorf("%w, and no usable agent SVID is saved in the data directory", ErrNoNodeAttestor)
	case a.cfg.TrustBundle != nil:
		return spiffebundle.FromX509Authorities(td, a.cfg.TrustBundle.X509Authorities()), nil
	case saved != nil:
		return saved, nil
	case a.cfg.InsecureBootstrap:
		return spiffebundle.New(td), nil
	}
	return nil, errors.New("agent: a trust bundle is needed to attest (or InsecureBootstrap, to try things out)")
}

// ID returns the agent's SPIFFE ID, or the zero ID while it holds no SVID.
func (a *Agent) ID() spiffeid.ID {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.svid == nil {
		return spiffeid.ID{}
	}
	return a.svid.ID
}

// SVID returns the agent's current X509-SVID, or nil while it holds none
// (see Attested).
func (a *Agent) SVID() *x509svid.SVID {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.svid == nil {
		return nil
	}
	return &x509svid.SVID{ID: a.svid.ID, Certificates: a.svid.Certificates, PrivateKey: a.key}
}

// GetX509SVID implements x509svid.Source with the agent's own SVID, which
// authenticates it to its servers. It fails while the agent holds none.
func (a *Agent) GetX509SVID() (*x509svid.SVID, error) {
	if s := a.SVID(); s != nil {
		return s, nil
	}
	return nil, errors.New("agent: not attested yet")
}

// Bundle returns the trust domain's bundle as the agent last received it
// (before the first attestation, the one it verifies the servers with).
func (a *Agent) Bundle() *spiffebundle.Bundle { return a.trust.Bundle() }

// Attested returns a channel closed once the agent holds an SVID: at New
// when a saved one is reused, else when Run's attestation succeeds.
func (a *Agent) Attested() <-chan struct{} { return a.attested }

// Synced returns a channel closed once the first sync with a server has
// completed.
func (a *Agent) Synced() <-chan struct{} { return a.synced }

// Handler returns the agent's Workload API handler, for an endpoint.Server
// of the caller's (Config.Listener is the simple way). It mints only while
// Run runs. Until the agent first synced with a server, a caller it knows
// no identity for is told to retry (endpoint.ErrUnavailable) rather than
// that it has none: its entries may not have arrived yet.
func (a *Agent) Handler() endpoint.Handler { return handler{Issuer: a.iss, synced: a.synced} }

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
	// SVIDExpiresAt is the expiry of the agent's own SVID; zero while it
	// holds none.
	SVIDExpiresAt time.Time
}

// Stats returns a snapshot of the agent's state.
func (a *Agent) Stats() Stats {
	st := Stats{
		Entries:   a.store.Len(),
		Connected: a.connected.Load(),
		Syncs:     a.syncs.Load(),
	}
	if ns := a.lastSync.Load(); ns != 0 {
		st.LastSync = time.Unix(0, ns)
	}
	a.mu.Lock()
	if a.svid != nil {
		st.SVIDExpiresAt = leafOf(a.svid).NotAfter
	}
	a.mu.Unlock()
	return st
}

// Healthy returns nil if the agent can serve workloads: it holds an
// unexpired SVID and has synced at least once, or serves the workload
// SVIDs it saved before a restart (see Config.DataDir). The server may be
// unreachable for a while; workloads are then served from the cache.
func (a *Agent) Healthy() error {
	st := a.Stats()
	switch {
	case st.SVIDExpiresAt.IsZero():
		return errors.New("agent: not attested yet")
	case !a.now().Before(st.SVIDExpiresAt):
		return errors.New("agent: the agent SVID has expired")
	case st.LastSync.IsZero() && !a.restored:
		return errors.New("agent: not synced with a server yet")
	}
	return nil
}

// Run runs the agent until ctx is done or Close is called, then returns
// nil. It attests, unless New took a saved SVID, retrying with backoff
// while no server answers; then, until it returns, it renews the agent SVID
// at half its life, keeps the entry stream open, has the SVIDs of the
// entries signed and refreshed, and serves the Workload API on
// Config.Listener.
//
// It returns an error when the agent cannot go on: a server refused its
// attestation, its node attestor failed or is missing (ErrNoNodeAttestor),
// the trust bundle does not verify the servers on its first attestation
// (nodeapi.ErrServerNotVerified), or a part of it failed (the Workload API listener). The errors of every
// part that failed are joined. Run may be called once; it fails at once
// when called again or after Close.
func (a *Agent) Run(ctx context.Context) error {
	ctx, done, err := a.life.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	defer func() {
		if cli := a.swapClient(nil); cli != nil {
			cli.Close()
		}
		if err := a.closeListener(); err != nil { // already closed if it was served
			a.log.Warn("closing the Workload API listener failed", "err", err)
		}
	}()
	if err := a.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	parts := []func(context.Context) error{a.iss.Run, a.syncLoop, a.renewLoop}
	if a.cfg.DataDir != "" {
		// What the data directory holds now: what was restored, or
		// nothing. Taken here, not when the save loop's goroutine first
		// runs, by which time the first sync may have minted SVIDs that
		// would then never count as a change to save.
		last := a.saved.State()
		parts = append(parts, func(ctx context.Context) error { return a.saved.Run(ctx, last) })
	}
	if a.api != nil {
		parts = append(parts, func(ctx context.Context) error { return a.api.Serve(ctx, a.cfg.Listener) })
	}
	if err := lifecycle.RunAll(ctx, parts...); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// start gives the agent its SVID, attesting if it holds none, and connects
// to the servers with it.
func (a *Agent) start(ctx context.Context) error {
	a.mu.Lock()
	svid := a.svid
	a.mu.Unlock()
	first := svid == nil
	if svid != nil && !a.now().Before(leafOf(svid).NotAfter) {
		a.log.Warn("the saved agent SVID has expired; attesting again", "agent", svid.ID.String())
		svid = nil
	}
	if svid != nil {
		return a.connect(renewalDrain)
	}
	key, keyData, svid, err := a.attestLoop(ctx, first)
	if err != nil {
		return err
	}
	a.trust.Set(svid.Bundle, false, nil, nil, nil)
	if err := a.setSVID(key, keyData, svid); err != nil {
		return err
	}
	a.attestOnce()
	return nil
}

// Close makes Run return and waits for it, then releases what the agent
// owns: the Workload API listener (if Run did not already close it), the
// connections to the servers and, last, the lock on Config.DataDir. Close
// is idempotent and safe for concurrent use. It does not close the
// attestors, which the caller owns.
func (a *Agent) Close() error {
	a.life.Close()
	a.closeOnce.Do(func() { a.closeErr = errors.Join(a.iss.Close(), a.closeListener(), a.lock.Close()) })
	return a.closeErr
}

// closeListener closes Config.Listener, if any and not closed yet.
func (a *Agent) closeListener() error {
	if a.cfg.Listener == nil {
		return nil
	}
	if err := a.cfg.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("agent: closing the Workload API listener: %w", err)
	}
	return nil
}

func (a *Agent) client() *nodeapi.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cli
}

// swapClient installs cli as the agent's client and returns the one it
// replaces.
func (a *Agent) swapClient(cli *nodeapi.Client) *nodeapi.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.cli
	a.cli = cli
	return old
}

// leafOf returns the leaf certificate of an agent SVID.
func leafOf(s *nodeapi.AgentSVID) *x509.Certificate { return s.Certificates[0] }

// workloadsSaveInterval is how often the agent looks whether to save its
// workloads (saved.Config.SaveInterval), and releaseAfterSave the size of
// a save after which it returns its free heap to the system
// (saved.Config.ReleaseAfterSave). Variables for tests.
var (
	workloadsSaveInterval = saved.DefaultSaveInterval
	releaseAfterSave      = saved.DefaultReleaseAfterSave
)

// renewalDrain bounds how long a connection replaced after a new agent SVID
// stays open for the calls in flight on it: a signing call over a slow
// link may take seconds, and failing it only to make it again would take
// longer still. Calls end sooner by their own deadlines; those that have
// none (the issuer's background mints) are cut at this bound.
const renewalDrain = 30 * time.Second

func (a *Agent) attestOnce() {
	select {
	case <-a.attested:
	default:
		close(a.attested)
	}
}

func (a *Agent) clientConfig(bundle x509bundle.Source, insecure bool) nodeapi.ClientConfig {
	return nodeapi.ClientConfig{
		Servers:           a.servers(),
		TrustDomain:       a.cfg.TrustDomain,
		Bundle:            bundle,
		InsecureBootstrap: insecure,
		Logger:            a.log,
		Now:               a.now,
	}
}

// installLocked records a new agent SVID and when to renew it. a.mu must
// be held, or a not shared yet.
func (a *Agent) installLocked(key crypto.Signer, keyData []byte, svid *nodeapi.AgentSVID) {
	start := leafOf(svid).NotBefore
	if now := a.now(); now.After(start) {
		start = now // NotBefore is backdated for clock skew
	}
	a.key, a.keyData, a.svid = key, keyData, svid
	a.renewAt = start.Add(leafOf(svid).NotAfter.Sub(start) / 2)
}

// setSVID installs a new agent SVID: saves it, and moves the client to a
// new connection that presents it, so that the server sees it at once
// (the sync loop reopens the entry stream over it). The calls in flight
// on the old connection finish there, for at most renewalDrain; the
// entry stream on it ends, and the sync loop reconnects at once.
//
// An SVID that cannot be saved (the disk is full) is installed all the
// same, and saved later by the renew loop: the server has recorded it as
// the agent's, and once the agent renews again the one it replaces is
// refused, so that keeping the old one would lock the agent out for good,
// with its join token spent.
func (a *Agent) setSVID(key crypto.Signer, keyData []byte, svid *nodeapi.AgentSVID) error {
	err := datadir.SaveState(a.cfg.DataDir, a.files, keyData, svid)
	if err != nil {
		a.log.Error("saving the agent SVID failed; using it anyway and saving it again until that works", "err", err)
	}
	a.mu.Lock()
	a.installLocked(key, keyData, svid)
	wasUnsaved := a.unsaved
	a.unsaved = err != nil
	a.mu.Unlock()
	if wasUnsaved && err == nil {
		// The SVID saved before is behind no more.
		a.log.Info("saved the agent SVID", "serial", leafOf(svid).SerialNumber.Text(16))
	}
	return a.connect(renewalDrain)
}

// servers returns Config.Servers in the order to try them: from the one
// failOver moved to, without the one it moved off (while there are
// others). The client tries the next address of a connection as well when
// one has not answered its handshake within a quarter of a second (gRPC's
// pick_first, "happy eyeballs"), and takes the first to answer: the server
// that failed, were it in the list, would win over a next server that is
// slower to answer (farther away, or loaded), and the failover would land
// on it again.
func (a *Agent) servers() []string {
	a.mu.Lock()
	first, movedOff := a.first, a.movedOff
	a.mu.Unlock()
	servers := append(slices.Clone(a.cfg.Servers[first:]), a.cfg.Servers[:first]...)
	if movedOff && len(servers) > 1 {
		servers = servers[:len(servers)-1]
	}
	return servers
}

// failOver moves the client to a new connection that tries the servers
// from the one after the server it tried first, and leaves that one out
// until it moves on again (see servers). A call to a server that
// failed (other than by refusing the agent) is tried again on the next: a
// server may accept connections and yet be unable to serve, cut off from
// its database, and the connection to it may be stalled by a partition,
// with TCP resending at ever longer intervals. The old connection is
// closed at once: the calls in flight on it, which may be stalled with
// it, fail and are made again over the new one.
//
// gen is the generation the failed call was made in. If the client has
// moved since (the other loop failed over, or the SVID was renewed), the
// call failed on a connection left already, maybe cut by that very move:
// failOver does not move again, which would take the agent back to the
// server just left, and reports false. The call is made again over the
// current connection.
func (a *Agent) failOver(gen uint64) (bool, error) {
	a.moving.Lock()
	defer a.moving.Unlock()
	if a.generation() != gen {
		return false, nil
	}
	a.moveOn()
	return true, a.connect(0)
}

// generation counts the connections the client has moved to: a call made
// in one generation and failed in a later one failed on a connection
// left.
func (a *Agent) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conns
}

// moveOn makes the server after the one tried first the first to try, and
// leaves that one out (see servers).
func (a *Agent) moveOn() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.first = (a.first + 1) % len(a.cfg.Servers)
	a.movedOff = true
}

// saveUnsaved saves the agent SVID if setSVID could not, and reports
// whether it is still unsaved.
func (a *Agent) saveUnsaved() bool {
	a.mu.Lock()
	keyData, svid, unsaved := a.keyData, a.svid, a.unsaved
	a.mu.Unlock()
	if !unsaved {
		return false
	}
	if err := datadir.SaveState(a.cfg.DataDir, a.files, keyData, svid); err != nil {
		return true // setSVID logged it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.svid == svid {
		a.unsaved = false
	}
	a.log.Info("saved the agent SVID", "serial", leafOf(svid).SerialNumber.Text(16))
	return a.unsaved
}

// connect makes the client, or moves it to a new connection, that
// presents the current SVID and tries the servers in the current order;
// the calls in flight on the old connection have drain to finish (see
// nodeapi.Client.Reconnect).
func (a *Agent) connect(drain time.Duration) error {
	if cli := a.client(); cli != nil {
		if err := cli.Reconnect(a.servers(), drain); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	} else {
		cli, err := nodeapi.Dial(a.clientConfig(a.trust, false), a)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		a.swapClient(cli)
	}
	a.mu.Lock()
	a.conns++
	a.mu.Unlock()
	return nil
}

// attestLoop attests, retrying with backoff until it succeeds, the server
// refuses the evidence for good, or ctx is done. The servers are verified
// with the trust's bundle, except on an InsecureBootstrap, which has none.
// On the agent's first attestation (first), a bundle that does not verify
// the servers fails at once, with ErrServerNotVerified: it is the
// configured Config.TrustBundle, and retrying cannot change it. Later, the
// bundle is the one last saved, which may be behind a CA the servers have
// rotated since (and is left to the operator to replace), so the loop
// goes on retrying. Each retry starts at the next server, as a failover
// does.
func (a *Agent) attestLoop(ctx context.Context, first bool) (crypto.Signer, []byte, *nodeapi.AgentSVID, error) {
	if a.cfg.NodeAttestor == nil {
		return nil, nil, nil, fmt.Errorf("%w, and the saved agent SVID has expired", ErrNoNodeAttestor)
	}
	insecure := a.cfg.InsecureBootstrap && len(a.trust.Bundle().X509Authorities()) == 0
	cfg := a.clientConfig(a.trust, insecure)
	b := a.backoff()
	for {
		key, keyData, err := a.keys.GenerateKey(ctx)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("agent: generating the agent key: %w", err)
		}
		svid, err := nodeapi.Attest(ctx, cfg, a.cfg.NodeAttestor, key)
		if err == nil {
			a.log.Info("attested", "agent", svid.ID.String(), "not_after", leafOf(svid).NotAfter)
			return key, keyData, svid, nil
		}
		if nodeapi.IsRefused(err) {
			return nil, nil, nil, fmt.Errorf("agent: the server refused attestation: %w", err)
		}
		if errors.Is(err, nodeapi.ErrNodeAttestor) {
			return nil, nil, nil, fmt.Errorf("agent: %w", err)
		}
		if first && errors.Is(err, nodeapi.ErrServerNotVerified) {
			return nil, nil, nil, fmt.Errorf("agent: the trust bundle does not verify the servers of %s (is it their trust domain's bundle?): %w",
				a.cfg.TrustDomain.Name(), err)
		}
		a.log.Warn("attestation failed; retrying", "err", err)
		// The next attempt starts at the next server: the one that failed
		// may answer and yet be unable to attest (cut off from its
		// database), and would be the first to answer again.
		a.moveOn()
		cfg.Servers = a.servers()
		if !b.wait(ctx) {
			return nil, nil, nil, fmt.Errorf("agent: attesting: %w (last error: %w)", ctx.Err(), err)
		}
	}
}

// syncLoop keeps the entry stream open, reconnecting with backoff, until
// ctx is done.
//
// After the stream was down, the first update of a new one is logged at
// Info ("reconnected to the server"), with how long the agent went
// without: what an operator looks for after the WARNs of an outage.
func (a *Agent) syncLoop(ctx context.Context) error {
	b := a.backoff()
	var downSince time.Time // when the stream last ended; zero while it is up
	for ctx.Err() == nil {
		got := false
		gen := a.generation()
		err := a.client().Sync(ctx, a.store.Revisions(), func(u nodeapi.Update) error {
			if !got && !downSince.IsZero() {
				a.log.Info("reconnected to the server", "outage", a.now().Sub(downSince).Round(time.Millisecond))
				downSince = time.Time{}
			}
			got = true
			a.connected.Store(true)
			return a.apply(ctx, u)
		})
		a.connected.Store(false)
		if ctx.Err() != nil {
			break
		}
		if got {
			b.reset()
		}
		if errors.Is(err, nodeapi.ErrReconnected) {
			// The client moved to a new connection, which ended the stream
			// on the old one: a renewed agent SVID, routine, or a
			// failover, which the loop that made it logged. Reconnect at
			// once, over the new connection; the revisions the agent holds
			// bring it up to date.
			a.log.Debug("entry stream moves to a new connection", "err", err)
			continue
		}
		if downSince.IsZero() {
			downSince = a.now()
		}
		if nodeapi.IsRefused(err) {
			a.log.Error("the server refused the agent", "err", err)
			a.recover(ctx)
		} else {
			a.log.Warn("entry stream ended; reconnecting", "err", err)
		}
		moved, err := a.failOver(gen)
		if !moved {
			continue // a new connection already: reconnect over it at once
		}
		if err != nil {
			a.log.Warn("reconnecting to the servers failed", "err", err)
		}
		if !b.wait(ctx) {
			break
		}
	}
	return nil
}

// apply records one sync update.
func (a *Agent) apply(ctx context.Context, u nodeapi.Update) error {
	if err := a.store.Replicate(ctx, u.Upserts, u.Deleted); err != nil {
		return fmt.Errorf("agent: applying the entries from the server: %w", err)
	}
	a.trust.SetTaintedKeys(u.TaintedJWTKeyIDs, u.TaintedWITKeyIDs)
	a.trust.Set(u.Bundle, u.FederatedSet, u.FederatedBundles, u.TaintedX509CAs, u.ActiveX509CA)
	if u.Bundle != nil {
		if err := datadir.SaveBundle(a.cfg.DataDir, u.Bundle); err != nil {
			a.log.Warn("saving the bundle failed", "err", err)
		}
	}
	if err := a.iss.Sync(ctx); err != nil {
		return err
	}
	a.lastSync.Store(a.now().UnixNano())
	a.syncs.Add(1)
	a.syncOnce.Do(func() {
		a.log.Info("synced with the server", "entries", a.store.Len())
		close(a.synced)
	})
	return nil
}

// renewLoop renews the agent SVID at half its life, or at once when the
// server names its CA as tainted, until ctx is done. While the SVID could
// not be saved, it tries to save it again every Config.RetryMax.
func (a *Agent) renewLoop(ctx context.Context) error {
	updates, unsubscribe := a.trust.Subscribe()
	defer unsubscribe()
	b := a.backoff()
	for {
		unsaved := a.saveUnsaved()
		a.mu.Lock()
		due := a.renewAt
		a.mu.Unlock()
		if a.svidTainted() {
			due = a.now()
		}
		wait := max(due.Sub(a.now()), 0)
		if unsaved {
			wait = min(wait, a.cfg.RetryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-updates:
			t.Stop()
			continue // the tainted CAs may have changed
		case <-t.C:
		}
		if a.now().Before(due) {
			continue // woken to save again
		}
		gen := a.generation()
		if err := a.renew(ctx); err != nil {
			// An expired SVID fails the TLS handshake, which looks like an
			// unreachable server rather than a refusal: only attesting
			// again can help then. Otherwise the next attempt goes over a
			// new connection, to the next server first: the connection
			// that failed may be stalled by a partition, and TCP resends
			// over it at ever longer intervals, so that after the heal it
			// may stay silent longer than the SVID has left; a new one
			// gets through at once.
			if nodeapi.IsRefused(err) || !a.now().Before(a.Stats().SVIDExpiresAt) {
				a.log.Warn("renewing the agent SVID failed", "err", err)
				a.recover(ctx)
			} else if moved, ferr := a.failOver(gen); !moved {
				// The entry stream's loop moved the client meanwhile,
				// which may have cut the renewal: made again at once, over
				// the new connection.
				a.log.Debug("renewal cut by a move to a new connection; renewing again", "err", err)
				continue
			} else {
				a.log.Warn("renewing the agent SVID failed", "err", err)
				if ferr != nil {
					a.log.Warn("reconnecting to the servers failed", "err", ferr)
				}
			}
			if !b.waitAtMost(ctx, a.svidLeft()/renewShare) {
				return nil
			}
			continue
		}
		b.reset()
	}
}

// Each attempt to renew the agent SVID, and each wait after a failed one,
// takes at most a renewShare-th of the time the SVID has left (an attempt
// at least minRenewAttempt, a wait at least nothing): however long the
// servers were unreachable, the agent tries again several times before
// its SVID expires.
const (
	renewShare      = 4
	minRenewAttempt = 5 * time.Second
)

// svidLeft returns how long the agent SVID has left, or zero.
func (a *Agent) svidLeft() time.Duration {
	if exp := a.Stats().SVIDExpiresAt; !exp.IsZero() {
		return max(exp.Sub(a.now()), 0)
	}
	return 0
}

// svidTainted reports whether the agent SVID was signed by a CA the server
// named as tainted (on any server of the trust domain), which must not be
// relied on until the SVID is replaced.
func (a *Agent) svidTainted() bool {
	a.mu.Lock()
	svid := a.svid
	a.mu.Unlock()
	if svid == nil || len(svid.Certificates) < 2 {
		return false
	}
	issuer := svid.Certificates[1].Raw
	return slices.ContainsFunc(a.trust.TaintedX509CAs(), func(c *x509.Certificate) bool { return bytes.Equal(c.Raw, issuer) })
}

func (a *Agent) renew(ctx context.Context) error {
	key, keyData, err := a.keys.GenerateKey(ctx)
	if err != nil {
		return fmt.Errorf("agent: generating the agent key: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, min(max(a.svidLeft()/renewShare, minRenewAttempt), time.Minute))
	defer cancel()
	svid, err := a.client().RenewAgent(ctx, key)
	if err != nil {
		return err
	}
	if svid.ID != a.ID() {
		return fmt.Errorf("agent: renewal returned %s, not %s", svid.ID, a.ID())
	}
	a.log.Info("agent SVID renewed", "serial", leafOf(svid).SerialNumber.Text(16), "not_after", leafOf(svid).NotAfter)
	return a.setSVID(key, keyData, svid)
}

// recover attests again after the server refused the agent (its SVID
// expired while the server was away, or it was evicted), when the node
// attestor allows; a join token cannot be used twice, so such an agent
// needs a new one and keeps serving what it holds meanwhile, as does an
// agent without a node attestor.
func (a *Agent) recover(ctx context.Context) {
	if a.cfg.NodeAttestor == nil {
		a.log.Error("attesting again is impossible; serving cached SVIDs until they expire",
			"err", fmt.Errorf("%w: Config.NodeAttestor is nil", ErrNoNodeAttestor))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	key, keyData, err := a.keys.GenerateKey(ctx)
	if err != nil {
		a.log.Error("attesting again failed: generating the agent key", "err", err)
		return
	}
	svid, err := nodeapi.Attest(ctx, a.clientConfig(a.trust, false), a.cfg.NodeAttestor, key)
	if err != nil {
		a.log.Error("attesting again failed; serving cached SVIDs until they expire", "err", err)
		return
	}
	if svid.ID != a.ID() {
		a.log.Warn("attested again under another ID", "old", a.ID().String(), "new", svid.ID.String())
	}
	a.trust.Set(svid.Bundle, false, nil, a.trust.TaintedX509CAs(), nil)
	if err := a.setSVID(key, keyData, svid); err != nil {
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
func (b *backoff) wait(ctx context.Context) bool { return b.waitAtMost(ctx, math.MaxInt64) }

// waitAtMost is wait, sleeping at most limit.
func (b *backoff) waitAtMost(ctx context.Context, limit time.Duration) bool {
	d := min(b.cur/2+time.Duration(mrand.Int64N(int64(b.cur)+1)), limit)
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
