package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// X509Source is a source of X509-SVIDs and X.509 bundles maintained via the
// Workload API.
//
// Its getters are non-blocking and read an immutable snapshot that the
// watch swaps whole on every update, so they are safe for concurrent use and
// cheap enough for a TLS callback. When the Workload API goes away, the
// source keeps serving the last good SVID and bundles while the watch
// reconnects with backoff. When the Workload API answers PermissionDenied,
// the caller's identity has been withdrawn: the source stops serving its
// SVID (WAPI rule 10; go-spiffe keeps it) but keeps the bundles, and picks the
// identity up again when it reappears.
type X509Source struct {
	base   sourceBase
	picker func([]*x509svid.SVID) *x509svid.SVID

	state     atomic.Pointer[x509State]
	ready     chan struct{}
	readyOnce sync.Once
}

// x509State is one immutable snapshot of an X509Source.
type x509State struct {
	svid      *x509svid.SVID // nil if the picker chose none or it was withdrawn
	withdrawn error          // the PermissionDenied error that withdrew svid
	bundles   *x509bundle.Set
}

// NewX509Source creates a new X509Source. It blocks until the initial update
// has been received from the Workload API, unless WithoutWaitingForFirstUpdate
// is given. The source should be closed when no longer in use to free
// underlying resources. On error, everything it started is stopped again.
func NewX509Source(ctx context.Context, options ...X509SourceOption) (_ *X509Source, err error) {
	var cfg x509SourceConfig
	for _, opt := range options {
		opt.configureX509Source(&cfg)
	}
	s := &X509Source{picker: cfg.picker, ready: make(chan struct{})}
	watch := func(ctx context.Context) error {
		return s.base.client.WatchX509Context(ctx, (*x509SourceWatcher)(s))
	}
	if err := s.base.start(ctx, cfg.sourceConfig, []func(context.Context) error{watch}, []chan struct{}{s.ready}); err != nil {
		return nil, s.base.closeOnError(err)
	}
	return s, nil
}

// Close closes the source, dropping the connection to the Workload API.
// Other source methods will return an error matching ErrSourceClosed after
// Close has been called. The underlying Workload API client will also be
// closed if it is owned by the X509Source (i.e. not provided via the
// WithClient option). Close waits for the watch goroutine to exit, is
// idempotent and safe for concurrent use.
func (s *X509Source) Close() (err error) {
	return s.base.close()
}

// GetX509SVID returns an X509-SVID from the source. It implements the
// x509svid.Source interface.
//
// It fails with ErrSourceClosed after Close, with an error matching
// ErrNoUpdate before the first update (see WithoutWaitingForFirstUpdate),
// and when the identity has been withdrawn or the picker chose none.
func (s *X509Source) GetX509SVID() (*x509svid.SVID, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	st := s.state.Load()
	switch {
	case st == nil:
		return nil, s.base.notReady("X509-SVID")
	case st.withdrawn != nil:
		return nil, fmt.Errorf("workloadapi: X509-SVID withdrawn by the Workload API: %w", st.withdrawn)
	case st.svid == nil:
		return nil, errors.New("workloadapi: missing X509-SVID")
	}
	return st.svid, nil
}

// GetX509BundleForTrustDomain returns the X.509 bundle for the given trust
// domain. It implements the x509bundle.Source interface.
func (s *X509Source) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	st := s.state.Load()
	if st == nil {
		return nil, s.base.notReady("X.509 bundle")
	}
	b, err := st.bundles.GetX509BundleForTrustDomain(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	return b, nil
}

// WaitUntilUpdated waits until the source is updated or the context is done,
// in which case ctx.Err() is returned.
func (s *X509Source) WaitUntilUpdated(ctx context.Context) error {
	return s.base.waitUntilUpdated(ctx)
}

// Updated returns a channel that is sent on whenever the source is updated.
// The channel has a capacity of one: updates that arrive while a
// notification is pending are coalesced into it.
func (s *X509Source) Updated() <-chan struct{} {
	return s.base.updated
}

// x509SourceWatcher is the X509ContextWatcher view of an X509Source, kept
// off the source's exported method set.
type x509SourceWatcher X509Source

func (w *x509SourceWatcher) OnX509ContextUpdate(x509Ctx *X509Context) {
	st := &x509State{svid: x509Ctx.DefaultSVID(), bundles: x509Ctx.Bundles}
	if w.picker != nil {
		st.svid = w.picker(x509Ctx.SVIDs)
	}
	w.state.Store(st)
	w.base.triggerUpdated()
	markReady(&w.readyOnce, w.ready)
}

func (w *x509SourceWatcher) OnX509ContextWatchError(err error) {
	w.base.setErr(err)
	if status.Code(err) != codes.PermissionDenied {
		return
	}
	// WAPI rule 10: after PermissionDenied, stop using the SVIDs.
	if st := w.state.Load(); st != nil && st.withdrawn == nil {
		w.state.Store(&x509State{withdrawn: err, bundles: st.bundles})
		w.base.triggerUpdated()
	}
}
