package workloadapi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// WITSource is a source of WIT-SVIDs and WIT bundles maintained via the
// Workload API. It implements both witsvid.Source and witbundle.Source.
// Getters are non-blocking and safe for concurrent use. As X509Source does,
// it stops serving its SVIDs when the Workload API answers PermissionDenied
// and keeps serving the last good ones while the API is unreachable.
//
// Experimental: subject to change.
type WITSource struct {
	base sourceBase

	svids     atomic.Pointer[witSVIDs]
	bundles   atomic.Pointer[witbundle.Set]
	svidsSet  chan struct{}
	svidsOnce sync.Once
	bundleSet chan struct{}
	bundlesOk sync.Once
}

type witSVIDs struct {
	svids     []*witsvid.SVID
	withdrawn error
}

// NewWITSource creates a new WITSource. It blocks until the initial updates
// have been received from the Workload API, unless
// WithoutWaitingForFirstUpdate is given. The source should be closed when no
// longer in use to free underlying resources. A server without the WIT-SVID
// profile answers Unimplemented, which NewWITSource returns.
//
// Experimental: subject to change.
func NewWITSource(ctx context.Context, options ...WITSourceOption) (_ *WITSource, err error) {
	var cfg witSourceConfig
	for _, opt := range options {
		opt.configureWITSource(&cfg)
	}
	s := &WITSource{svidsSet: make(chan struct{}), bundleSet: make(chan struct{})}
	watches := []func(context.Context) error{
		func(ctx context.Context) error { return s.base.client.WatchWITSVIDs(ctx, s, "") },
		func(ctx context.Context) error { return s.base.client.WatchWITBundles(ctx, s) },
	}
	if err := s.base.start(ctx, cfg.sourceConfig, watches, []chan struct{}{s.svidsSet, s.bundleSet}); err != nil {
		return nil, s.base.closeOnError(err)
	}
	return s, nil
}

// Close closes the source, dropping the connection to the Workload API.
// Other source methods will return an error matching ErrSourceClosed after
// Close has been called; an owned client is closed too. Close waits for the
// watch goroutines to exit, is idempotent and safe for concurrent use.
//
// Experimental: subject to change.
func (s *WITSource) Close() error {
	return s.base.close()
}

// GetWITSVIDForID returns the WIT-SVID for the given SPIFFE ID. It implements
// the witsvid.Source interface.
//
// Experimental: subject to change.
func (s *WITSource) GetWITSVIDForID(id spiffeid.ID) (*witsvid.SVID, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	st := s.svids.Load()
	switch {
	case st == nil:
		return nil, s.base.notReady("WIT-SVID")
	case st.withdrawn != nil:
		return nil, fmt.Errorf("workloadapi: WIT-SVIDs withdrawn by the Workload API: %w", st.withdrawn)
	}
	for _, svid := range st.svids {
		if svid.ID == id {
			return svid, nil
		}
	}
	return nil, fmt.Errorf("workloadapi: no WIT-SVID found for SPIFFE ID %q", id)
}

// GetWITBundleForTrustDomain returns the WIT bundle for the given trust
// domain. It implements the witbundle.Source interface.
//
// Experimental: subject to change.
func (s *WITSource) GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*witbundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	set := s.bundles.Load()
	if set == nil {
		return nil, s.base.notReady("WIT bundle")
	}
	b, err := set.GetWITBundleForTrustDomain(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	return b, nil
}

// WaitUntilUpdated waits until the source is updated or the context is done,
// in which case ctx.Err() is returned.
//
// Experimental: subject to change.
func (s *WITSource) WaitUntilUpdated(ctx context.Context) error {
	return s.base.waitUntilUpdated(ctx)
}

// Updated returns a channel that is sent on whenever the source is updated.
//
// Experimental: subject to change.
func (s *WITSource) Updated() <-chan struct{} {
	return s.base.updated
}

// OnWITSVIDsUpdate implements WITSVIDWatcher. The source's own watch calls
// it; other callers replace the source's SVIDs.
func (s *WITSource) OnWITSVIDsUpdate(svids []*witsvid.SVID) {
	s.svids.Store(&witSVIDs{svids: svids})
	s.base.triggerUpdated()
	markReady(&s.svidsOnce, s.svidsSet)
}

// OnWITSVIDsWatchError implements WITSVIDWatcher. A PermissionDenied error
// withdraws the source's SVIDs (WAPI rule 10).
func (s *WITSource) OnWITSVIDsWatchError(err error) {
	s.base.setErr(err)
	if status.Code(err) != codes.PermissionDenied {
		return
	}
	if st := s.svids.Load(); st != nil && st.withdrawn == nil {
		s.svids.Store(&witSVIDs{withdrawn: err})
		s.base.triggerUpdated()
	}
}

// OnWITBundlesUpdate implements WITBundleWatcher. The source's own watch
// calls it; other callers replace the source's bundles.
func (s *WITSource) OnWITBundlesUpdate(bundles *witbundle.Set) {
	s.bundles.Store(bundles)
	s.base.triggerUpdated()
	markReady(&s.bundlesOk, s.bundleSet)
}

// OnWITBundlesWatchError implements WITBundleWatcher.
func (s *WITSource) OnWITBundlesWatchError(err error) {
	s.base.setErr(err)
}
