package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Defaults of [Options].
const (
	// DefaultOnceTimeout bounds how long non-daemon mode waits for the
	// Workload API to answer and to give this process its SVIDs.
	DefaultOnceTimeout = time.Minute
	// DefaultStopTimeout is how long, at shutdown, the process started
	// from cmd has to exit after SIGTERM before it is killed.
	DefaultStopTimeout = 10 * time.Second
)

// JWT-SVID refresh: half the remaining lifetime, as spiffe-helper does,
// but at least minJWTRefresh; after a failure, retry from jwtRetryMin
// doubling up to jwtRetryMax.
const (
	minJWTRefresh = time.Second
	jwtRetryMin   = time.Second
	jwtRetryMax   = time.Minute
)

// Options are what a [Helper] needs besides its [Config].
type Options struct {
	// Addr is the Workload API address ([Config.Resolve] returns it).
	Addr string
	// Logger receives the helper's logs; nil discards them.
	Logger *slog.Logger
	// Stdout and Stderr are given to the process started from cmd; nil
	// discards its output.
	Stdout, Stderr io.Writer
	// Now is the clock omit_expired compares with; nil: time.Now.
	Now func() time.Time
	// OnceTimeout bounds [Helper.Once]; 0: DefaultOnceTimeout.
	OnceTimeout time.Duration
	// StopTimeout: 0 means DefaultStopTimeout.
	StopTimeout time.Duration
	// HealthListener, when not nil, is where the health server listens
	// instead of health_checks.bind_port on every interface, when
	// health_checks.listener_enabled is set; Run closes it then.
	HealthListener net.Listener
}

// A Helper keeps the files of a [Config] fresh from the Workload API and
// tells a process when they change. Create it with [New], then call
// [Helper.Run] (daemon mode) or [Helper.Once] (non-daemon mode), once.
type Helper struct {
	cfg    *Config
	opts   Options
	log    *slog.Logger
	health *health
	proc   *process

	mu      sync.Mutex
	pending map[string]bool // files (x509Status for the X.509 set) not written yet
}

// New returns a Helper for cfg, which must come from [ParseConfig] (and
// [Config.Resolve] for the address). It starts nothing.
func New(cfg *Config, opts Options) *Helper {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnceTimeout == 0 {
		opts.OnceTimeout = DefaultOnceTimeout
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	h := &Helper{cfg: cfg, opts: opts, log: opts.Logger, health: newHealth(cfg), pending: map[string]bool{}}
	if h.x509Enabled() {
		h.pending[x509Status] = true
	}
	if cfg.JWTBundleFileName != "" {
		h.pending[cfg.path(cfg.JWTBundleFileName)] = true
	}
	for _, j := range cfg.JWTSVIDs {
		h.pending[cfg.path(j.FileName)] = true
	}
	h.proc = &process{cfg: cfg, log: opts.Logger, stdout: opts.Stdout, stderr: opts.Stderr}
	return h
}

func (h *Helper) x509Enabled() bool { return h.cfg.SVIDFileName != "" }

func (h *Helper) client(ctx context.Context) (*workloadapi.Client, error) {
	return workloadapi.New(ctx, workloadapi.WithAddr(h.opts.Addr), workloadapi.WithLogger(logger.Slog(h.log)))
}

// Run is daemon mode: it watches the Workload API and rewrites the files
// at each change (X.509 files and the JWT bundle file when the agent
// pushes an update, each JWT-SVID file at half its token's remaining
// lifetime), and serves the health endpoints when enabled. Once every
// configured file (the X.509 set, the JWT bundle file, each JWT-SVID
// file) has been written, it starts the process of cmd and sends
// renew_signal to the process of pid_file_name; after that, at each
// renewal, it sends renew_signal to both (or starts the process of cmd
// again, if it exited). A renewal is a write of the X.509 files or, when
// none are configured, of a JWT file. Run returns nil when ctx is done, after
// stopping the process it started (SIGTERM, then SIGKILL after
// StopTimeout); it returns an error when the watch cannot go on (the
// Workload API refuses the request for good) or the health server cannot
// listen.
func (h *Helper) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	client, err := h.client(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	var wg sync.WaitGroup
	defer h.proc.stop(h.opts.StopTimeout)
	if h.cfg.HealthChecks.ListenerEnabled {
		stop, err := h.health.serve(h.opts.HealthListener, h.cfg.HealthChecks, h.log)
		if err != nil {
			return err
		}
		defer stop()
	}
	fail := func(what string, err error) {
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("%s: %w", what, err))
		}
	}
	if h.x509Enabled() {
		wg.Go(func() { fail("watching X.509 SVIDs", client.WatchX509Context(ctx, x509Watcher{h})) })
	}
	if h.cfg.JWTBundleFileName != "" {
		wg.Go(func() { fail("watching JWT bundles", client.WatchJWTBundles(ctx, jwtBundleWatcher{h})) })
	}
	for _, j := range h.cfg.JWTSVIDs {
		wg.Go(func() { h.keepJWTSVID(ctx, client, j) })
	}
	h.log.Info("spiffe-helper running", "agent_address", h.opts.Addr, "cert_dir", h.cfg.CertDir)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// wrote records that the file of key (x509Status for the X.509 set) was
// written, and tells the processes when it was the last of the files to
// be written for the first time, or when it is a renewal once every file
// has been written: a process must never start, or reload, with some of
// its files missing.
func (h *Helper) wrote(key string, renewal bool) {
	h.mu.Lock()
	first := h.pending[key]
	delete(h.pending, key)
	var unwritten []string
	for k := range h.pending {
		if k == x509Status {
			k = h.cfg.path(h.cfg.SVIDFileName)
		}
		unwritten = append(unwritten, k)
	}
	h.mu.Unlock()
	switch {
	case len(unwritten) > 0:
		if first && (h.cfg.Cmd != "" || h.cfg.PIDFileName != "") {
			slices.Sort(unwritten)
			h.log.Info("waiting for every file to be written before starting or signalling a process", "unwritten", unwritten)
		}
	case first, renewal:
		h.renewed()
	}
}

// renewed tells the processes that the files changed.
func (h *Helper) renewed() {
	if h.cfg.Cmd != "" {
		h.proc.renew()
	}
	if h.cfg.PIDFileName != "" {
		if err := signalPIDFile(h.cfg.PIDFileName, h.cfg.RenewSignal); err != nil {
			h.log.Error("cannot signal the process of pid_file_name", "err", err)
		}
	}
}

type x509Watcher struct{ h *Helper }

func (w x509Watcher) OnX509ContextUpdate(x *workloadapi.X509Context) {
	h := w.h
	svid, err := h.cfg.writeX509(x, h.opts.Now())
	if err != nil {
		h.health.set(x509Status, statusFailed)
		h.log.Error("cannot write the X.509 files", "err", err)
		return
	}
	h.health.set(x509Status, statusWritten)
	h.log.Info("X.509 files written", "spiffe_id", svid.ID.String(), "serial", svid.Certificates[0].SerialNumber.String(),
		"expires", svid.Certificates[0].NotAfter)
	h.wrote(x509Status, true)
}

func (w x509Watcher) OnX509ContextWatchError(err error) {
	if status.Code(err) != codes.Canceled {
		w.h.log.Warn("X.509 watch failed; retrying", "err", err)
	}
}

type jwtBundleWatcher struct{ h *Helper }

func (w jwtBundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	h := w.h
	if err := h.cfg.writeJWTBundles(set); err != nil {
		h.health.set(h.cfg.path(h.cfg.JWTBundleFileName), statusFailed)
		h.log.Error("cannot write the JWT bundle file", "err", err)
		return
	}
	h.health.set(h.cfg.path(h.cfg.JWTBundleFileName), statusWritten)
	h.log.Info("JWT bundle file written", "trust_domains", set.Len())
	h.wrote(h.cfg.path(h.cfg.JWTBundleFileName), !h.x509Enabled())
}

func (w jwtBundleWatcher) OnJWTBundlesWatchError(err error) {
	if status.Code(err) != codes.Canceled {
		w.h.log.Warn("JWT bundle watch failed; retrying", "err", err)
	}
}

// keepJWTSVID writes the JWT-SVID of j until ctx is done, fetching a new
// one at half the remaining lifetime of the last.
func (h *Helper) keepJWTSVID(ctx context.Context, client *workloadapi.Client, j JWTSVIDConfig) {
	retry := jwtRetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		svid, err := h.writeJWTSVID(ctx, client, j)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.log.Error("cannot write a JWT-SVID file; retrying", "audience", j.Audience, "retry_in", retry, "err", err)
			timer.Reset(retry)
			retry = min(2*retry, jwtRetryMax)
			continue
		}
		retry = jwtRetryMin
		next := max(svid.Expiry.Sub(h.opts.Now())/2, minJWTRefresh)
		h.log.Info("JWT-SVID file written", "file", j.FileName, "spiffe_id", svid.ID.String(), "expires", svid.Expiry, "next", next)
		h.wrote(h.cfg.path(j.FileName), !h.x509Enabled())
		timer.Reset(next)
	}
}

// writeJWTSVID fetches the JWT-SVID of j and writes it, recording the
// outcome for the health endpoints.
func (h *Helper) writeJWTSVID(ctx context.Context, client *workloadapi.Client, j JWTSVIDConfig) (*jwtsvid.SVID, error) {
	path := h.cfg.path(j.FileName)
	svids, err := client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: j.Audience, ExtraAudiences: j.ExtraAudiences})
	if err == nil {
		var svid *jwtsvid.SVID
		if svid, err = pickJWT(svids, h.cfg.Hint); err == nil {
			if err = h.cfg.writeJWTSVID(svid, j.FileName); err == nil {
				h.health.set(path, statusWritten)
				return svid, nil
			}
		}
	}
	h.health.set(path, statusFailed)
	return nil, err
}

// Once is non-daemon mode: it writes every configured file once and
// returns. It waits (up to OnceTimeout) for a Workload API that is not
// there yet or does not know this process yet (Unavailable,
// PermissionDenied), as an init container must; any other failure is
// returned at once. cmd, renew_signal and pid_file_name play no part.
func (h *Helper) Once(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.OnceTimeout)
	defer cancel()
	client, err := h.client(ctx)
	if err != nil {
		return err
	}
	defer client.Close()
	if h.x509Enabled() {
		var x *workloadapi.X509Context
		if err := h.retry(ctx, "X.509 SVIDs", func() (err error) { x, err = client.FetchX509Context(ctx); return err }); err != nil {
			return err
		}
		svid, err := h.cfg.writeX509(x, h.opts.Now())
		if err != nil {
			return fmt.Errorf("writing the X.509 files: %w", err)
		}
		h.log.Info("X.509 files written", "spiffe_id", svid.ID.String(), "serial", svid.Certificates[0].SerialNumber.String())
	}
	if h.cfg.JWTBundleFileName != "" {
		var set *jwtbundle.Set
		if err := h.retry(ctx, "JWT bundles", func() (err error) { set, err = client.FetchJWTBundles(ctx); return err }); err != nil {
			return err
		}
		if err := h.cfg.writeJWTBundles(set); err != nil {
			return fmt.Errorf("writing the JWT bundle file: %w", err)
		}
		h.log.Info("JWT bundle file written", "trust_domains", set.Len())
	}
	var errs []error
	for _, j := range h.cfg.JWTSVIDs {
		var svid *jwtsvid.SVID
		err := h.retry(ctx, "a JWT-SVID for "+strconv.Quote(j.Audience), func() (err error) {
			svid, err = h.writeJWTSVID(ctx, client, j)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.log.Info("JWT-SVID file written", "file", j.FileName, "spiffe_id", svid.ID.String())
	}
	return errors.Join(errs...)
}

// retry calls f until it succeeds, fails for another reason than an
// agent not ready (Unavailable) or not knowing the caller yet
// (PermissionDenied), or ctx is done.
func (h *Helper) retry(ctx context.Context, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		code := status.Code(err)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetching %s: gave up after %s: %w", what, h.opts.OnceTimeout, err)
		}
		if code != codes.Unavailable && code != codes.PermissionDenied {
			return fmt.Errorf("fetching %s: %w", what, err)
		}
		h.log.Info("waiting for the Workload API", "what", what, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetching %s: gave up after %s: %w", what, h.opts.OnceTimeout, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
