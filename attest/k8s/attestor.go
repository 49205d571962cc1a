package k8s

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/cgroups"
	"github.com/spiffekit/spiffekit/attest/unix"
)

// SelectorType is the type of every selector the attestor produces.
const SelectorType = "k8s"

// Defaults for the zero values of [Config] fields.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultPollTimeout  = 30 * time.Second
	DefaultMaxStaleness = time.Second
	DefaultTimeout      = 10 * time.Second
)

// maxCgroupSize bounds what is read of a /proc/<pid>/cgroup file.
const maxCgroupSize = 1 << 20

// Config configures [New].
type Config struct {
	// KubeletURL is where the kubelet serves its API: the scheme, host and
	// port only. Its secure port is "https://127.0.0.1:10250" (or the
	// node's name instead of 127.0.0.1); its read-only port, when the
	// kubelet has one, "http://127.0.0.1:10255". Required.
	KubeletURL string

	// RootCAs verify the certificate the kubelet serves on an https://
	// KubeletURL: the CA of the kubelet's serving certificates, or, for a
	// kubelet that made its own, that certificate. Required with https
	// unless InsecureSkipVerify.
	RootCAs *x509.CertPool

	// ServerName, when set, is the name (or IP address) the kubelet's
	// certificate must hold: the node's name. Empty means the chain is
	// verified but not the name, as when the kubelet is reached at
	// 127.0.0.1 with a certificate naming the node.
	ServerName string

	// InsecureSkipVerify, when true, accepts whatever certificate the
	// kubelet serves. Anyone who can take the kubelet's address (a process
	// on the node listening on its port while the kubelet restarts) could
	// then answer with pods of their choosing. SPIRE's
	// skip_kubelet_verification.
	InsecureSkipVerify bool

	// Token returns the bearer token sent with each request to an https://
	// KubeletURL: a service account token allowed to get nodes/proxy (the
	// kubelet asks the API server). It is called for every request, so
	// that a projected token that rotates is read again. Nil sends none
	// (a kubelet that admits anonymous requests). It must be nil with
	// http://, which takes no credentials.
	Token func(ctx context.Context) (string, error)

	// PollInterval is how long the attestor waits before asking the
	// kubelet again for a container it does not list yet. Zero means
	// [DefaultPollInterval]; it must not be negative.
	PollInterval time.Duration

	// PollTimeout bounds how long the attestor looks for such a container
	// before it fails (an error the caller is told to retry). Zero means
	// [DefaultPollTimeout]; it must not be negative.
	PollTimeout time.Duration

	// MaxStaleness is how old a pod list may be and still answer: within
	// it, attestations share one request to the kubelet. A pod's labels
	// changed, or a pod deleted, may go unseen that long. Zero means
	// [DefaultMaxStaleness]; negative means every attestation asks the
	// kubelet.
	MaxStaleness time.Duration

	// Timeout bounds each request to the kubelet. Zero means
	// [DefaultTimeout]; it must not be negative.
	Timeout time.Duration

	// ProcRoot is where the proc filesystem showing the workloads is
	// mounted. Empty means unix.DefaultProcRoot.
	ProcRoot string

	// Logger receives a warning for each selector left out because it
	// would not be a valid [attest.Selector], and for containers not
	// found in time. Nil discards them.
	Logger *slog.Logger
}

// Attestor is the k8s workload attestor. It is safe for concurrent use,
// holds no connection between attestations and needs no closing.
//
// For a process in a container of a pod the kubelet runs, it returns the
// selectors of SPIRE's k8s attestor, all of type "k8s":
//
//	ns:<namespace>                        sa:<service account>
//	pod-name:<name>                       pod-uid:<uid>
//	pod-label:<key>:<value>               node-name:<node>
//	pod-owner:<kind>:<name>               pod-owner-uid:<kind>:<uid>
//	container-name:<name>                 container-image:<image>, container-image:<image ID>
//	pod-image:<image>, pod-image:<image ID>            one pair per container of the pod
//	pod-init-image:<image>, pod-init-image:<image ID>  one pair per init container
//	pod-image-count:<n>                   pod-init-image-count:<n>
//
// An empty property (an image ID not reported yet) gives no selector; one
// that would not make a valid selector is left out with a warning.
//
// # Which pod
//
// The process's cgroups give its container's ID and, unless the process
// is seen from another cgroup namespace, its pod's UID (see package
// attest/internal/cgroups for the forms recognised). The container must
// be one of the pod's containers or init containers in the kubelet's
// list, with that ID, in the pod of that UID:
//
//   - A container the list does not hold yet (just started) is looked for
//     again every PollInterval, with a new list, until PollTimeout; then
//     the attestation fails with an error that does not wrap
//     [attest.ErrRejected], so that the caller retries later.
//   - A container listed in another pod than its cgroups name, or in two
//     pods, cannot be resolved, and cgroups that name two containers or
//     pods are ambiguous: the error wraps ErrRejected. The process gets
//     no identity, never one of those pods'.
//   - A container whose cgroups name no pod is looked up in a list made
//     after the attestation began; if no pod holds it, it is not a pod's
//     (a container of another runtime on the node) and gets no selectors.
//   - Ephemeral containers (kubectl debug) are not attested: their
//     processes are not found, and time out.
//
// A process in no container gets no selectors and no error, without a
// request to the kubelet. The cgroups are read as attest/unix reads a
// process (see unix.ReadProcFile): an error wraps ErrRejected when the
// process exited or is not the one the [attest.Workload] recorded.
//
// A process that can write its cgroups (root on the node, a privileged
// container) can make one named like another pod's container and be
// taken for it, as with SPIRE; the kubelet's list says nothing of where
// a pod's processes are. Keep such processes to those that could take
// any identity anyway.
type Attestor struct {
	kubelet      *kubelet
	pollInterval time.Duration
	pollTimeout  time.Duration
	maxStaleness time.Duration
	procRoot     string
	log          *slog.Logger

	mu       sync.Mutex
	cur      *snapshot // the latest list fetched, nil before the first
	inflight *fetch    // the request under way, nil when none is
}

// A snapshot is a pod list and the time its request was made (so its
// content is at least that recent).
type snapshot struct {
	pods *pods
	at   time.Time
}

// A fetch is a request for the pod list that attestations wait on
// together.
type fetch struct {
	started time.Time
	done    chan struct{} // closed once snap and err are set
	snap    *snapshot
	err     error
}

var _ attest.WorkloadAttestor = (*Attestor)(nil)

// New returns an attestor configured by cfg. It starts nothing and does
// not contact the kubelet.
func New(cfg Config) (*Attestor, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PollInterval", cfg.PollInterval}, {"PollTimeout", cfg.PollTimeout}, {"Timeout", cfg.Timeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("k8s: %s must not be negative", d.name)
		}
	}
	a := &Attestor{
		pollInterval: orDefault(cfg.PollInterval, DefaultPollInterval),
		pollTimeout:  orDefault(cfg.PollTimeout, DefaultPollTimeout),
		maxStaleness: orDefault(cfg.MaxStaleness, DefaultMaxStaleness),
		procRoot:     cfg.ProcRoot,
		log:          cfg.Logger,
	}
	if cfg.KubeletURL == "" {
		return nil, errors.New("k8s: KubeletURL is required")
	}
	var err error
	if a.kubelet, err = newKubelet(&cfg, orDefault(cfg.Timeout, DefaultTimeout)); err != nil {
		return nil, err
	}
	if a.procRoot == "" {
		a.procRoot = unix.DefaultProcRoot
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Attest returns the selectors of the pod and container the process w
// describes runs in. See [Attestor] for what they are, how the pod is
// found and which errors wrap [attest.ErrRejected].
func (a *Attestor) Attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	if w.PID <= 0 {
		return attest.Selectors{}, errors.New("k8s: PID " + strconv.Itoa(w.PID) + " is not a process")
	}
	data, err := unix.ReadProcFile(a.procRoot, w, "cgroup", maxCgroupSize)
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("k8s: %w", err)
	}
	c, ok, err := cgroups.Parse(data)
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("k8s: process %d: %w: %w", w.PID, attest.ErrRejected, err)
	}
	if !ok {
		return attest.Selectors{}, nil
	}
	start := time.Now()
	var seen time.Time // when the list last looked at was asked for
	for {
		snap, err := a.list(ctx, seen)
		if err != nil {
			return attest.Selectors{}, fmt.Errorf("k8s: listing the node's pods: %w", err)
		}
		seen = snap.at
		p, status, found, err := snap.pods.lookup(c)
		switch {
		case err != nil:
			return attest.Selectors{}, fmt.Errorf("k8s: process %d: %w", w.PID, err)
		case found:
			return a.selectors(w.PID, p, status), nil
		case snap.at.Before(start):
			// Cached from before the process asked: ask again at once.
			continue
		case c.PodUID == "":
			return attest.Selectors{}, nil
		case time.Since(start) >= a.pollTimeout:
			a.log.Warn("k8s: the kubelet does not list the container of a process", "pid", w.PID,
				"pod_uid", c.PodUID, "container", c.ID, "waited", a.pollTimeout)
			return attest.Selectors{}, fmt.Errorf("k8s: process %d: the kubelet does not list container %s of pod %s (looked for %s)",
				w.PID, c.ID, c.PodUID, a.pollTimeout)
		}
		a.log.Debug("k8s: container not listed yet", "pid", w.PID, "pod_uid", c.PodUID, "container", c.ID)
		timer := time.NewTimer(a.pollInterval)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return attest.Selectors{}, fmt.Errorf("k8s: process %d: looking for container %s of pod %s: %w", w.PID, c.ID, c.PodUID, ctx.Err())
		}
	}
}

// lookup finds the pod and the status of the container c names.
func (p *pods) lookup(c cgroups.Container) (*pod, *containerStatus, bool, error) {
	r, ok := p.containers[c.ID]
	switch {
	case !ok:
		return nil, nil, false, nil
	case r.dup:
		return nil, nil, false, fmt.Errorf("%w: the kubelet lists container %s in more than one pod", attest.ErrRejected, c.ID)
	}
	pd := &p.items[r.pod]
	if c.PodUID != "" && pd.Metadata.UID != c.PodUID {
		return nil, nil, false, fmt.Errorf("%w: container %s is in pod %s by its cgroups, but the kubelet lists it in pod %s",
			attest.ErrRejected, c.ID, c.PodUID, pd.Metadata.UID)
	}
	return pd, r.status, true, nil
}

// list returns a pod list asked for after the time after: the cached one
// if it is recent enough, else the one a request under way brings, else a
// new one. Concurrent callers share one request.
func (a *Attestor) list(ctx context.Context, after time.Time) (*snapshot, error) {
	for {
		a.mu.Lock()
		if s := a.cur; s != nil && s.at.After(after) && time.Since(s.at) <= a.maxStaleness {
			a.mu.Unlock()
			return s, nil
		}
		if f := a.inflight; f != nil {
			a.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			switch {
			case !f.started.After(after):
				continue // older than the caller needs: ask anew
			case f.err == nil:
				return f.snap, nil
			case ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)):
				continue // the caller that asked gave up, not the kubelet
			}
			return nil, f.err
		}
		f := &fetch{started: time.Now(), done: make(chan struct{})}
		a.inflight = f
		a.mu.Unlock()

		f.snap, f.err = a.fetch(ctx, f.started)
		a.mu.Lock()
		a.inflight = nil
		if f.err == nil && (a.cur == nil || f.snap.at.After(a.cur.at)) {
			a.cur = f.snap
		}
		a.mu.Unlock()
		close(f.done)
		return f.snap, f.err
	}
}

// fetch asks the kubelet for its pod list.
func (a *Attestor) fetch(ctx context.Context, at time.Time) (*snapshot, error) {
	data, err := a.kubelet.pods(ctx)
	if err != nil {
		return nil, err
	}
	p, err := parsePods(data)
	if err != nil {
		return nil, err
	}
	return &snapshot{pods: p, at: at}, nil
}

// selectors turns the properties of pod p and the container of status c
// into selectors, leaving out empty ones, and, with a warning, those that
// would be invalid.
func (a *Attestor) selectors(pid int, p *pod, c *containerStatus) attest.Selectors {
	var sels []attest.Selector
	for _, f := range append(podFields(p), containerFields(c)...) {
		if f.value == "" {
			continue
		}
		sel := attest.Selector{Type: SelectorType, Value: f.kind + ":" + f.value}
		if err := sel.Validate(); err != nil {
			a.log.Warn("k8s: left out a selector that would be invalid", "pid", pid, "pod_uid", p.Metadata.UID, "kind", f.kind, "error", err)
			continue
		}
		sels = append(sels, sel)
	}
	return attest.NewSelectors(sels...)
}
