package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// X509ContextWatcher receives X509Context updates from the Workload API.
type X509ContextWatcher interface {
	// OnX509ContextUpdate is called with the latest X.509 context retrieved
	// from the Workload API.
	OnX509ContextUpdate(*X509Context)

	// OnX509ContextWatchError is called when there is a problem establishing
	// or maintaining connectivity with the Workload API.
	OnX509ContextWatchError(error)
}

// X509BundleWatcher receives X.509 bundle updates from the Workload API.
type X509BundleWatcher interface {
	// OnX509BundlesUpdate is called with the latest X.509 bundle set retrieved
	// from the Workload API.
	OnX509BundlesUpdate(*x509bundle.Set)

	// OnX509BundlesWatchError is called when there is a problem establishing
	// or maintaining connectivity with the Workload API.
	OnX509BundlesWatchError(error)
}

// JWTBundleWatcher receives JWT bundle updates from the Workload API.
type JWTBundleWatcher interface {
	// OnJWTBundlesUpdate is called with the latest JWT bundle set retrieved
	// from the Workload API.
	OnJWTBundlesUpdate(*jwtbundle.Set)

	// OnJWTBundlesWatchError is called when there is a problem establishing
	// or maintaining connectivity with the Workload API.
	OnJWTBundlesWatchError(error)
}

// WITSVIDWatcher receives WIT-SVID updates from the Workload API.
//
// Experimental: subject to change.
type WITSVIDWatcher interface {
	// OnWITSVIDsUpdate is called with the latest WIT-SVIDs retrieved from
	// the Workload API.
	OnWITSVIDsUpdate([]*witsvid.SVID)

	// OnWITSVIDsWatchError is called when there is a problem establishing
	// or maintaining connectivity with the Workload API.
	OnWITSVIDsWatchError(error)
}

// WITBundleWatcher receives WIT bundle updates from the Workload API.
//
// Experimental: subject to change.
type WITBundleWatcher interface {
	// OnWITBundlesUpdate is called with the latest WIT bundle set retrieved
	// from the Workload API.
	OnWITBundlesUpdate(*witbundle.Set)

	// OnWITBundlesWatchError is called when there is a problem establishing
	// or maintaining connectivity with the Workload API.
	OnWITBundlesWatchError(error)
}

// errStreamClosed reports a stream the server ended without an error.
var errStreamClosed = errors.New("workloadapi: stream closed by the Workload API")

// WatchX509Context watches for updates to the X.509 context. The watcher
// receives the updated X.509 context.
//
// Watching follows the rules shared by every Watch method:
//   - Each message is checked as by FetchX509Context; a malformed one is
//     reported to the watcher's error method and otherwise ignored, so the
//     watcher keeps its previous state (WAPI rule 6).
//   - When the stream ends, or fails with any code other than
//     InvalidArgument and Unimplemented (Unavailable, PermissionDenied, an
//     unreachable socket, ...), the error is reported to the watcher and the
//     watch reconnects after a delay from the client's BackoffStrategy. The
//     backoff is reset after every message that was applied.
//   - InvalidArgument and Unimplemented are reported and returned: retrying
//     cannot help (WE rule 9, WAPI rule 1). go-spiffe retries Unimplemented
//     on its X.509 and JWT watches.
//   - When ctx is done, the method returns ctx.Err() without reporting it.
func (c *Client) WatchX509Context(ctx context.Context, watcher X509ContextWatcher) error {
	return watchStream(ctx, c, "X.509 context", c.wl.FetchX509SVID, &workloadpb.X509SVIDRequest{},
		parseX509Context, watcher.OnX509ContextUpdate, watcher.OnX509ContextWatchError)
}

// WatchX509Bundles watches for changes to the X.509 bundles. The watcher
// receives the updated X.509 bundles. See WatchX509Context for the retry
// rules.
func (c *Client) WatchX509Bundles(ctx context.Context, watcher X509BundleWatcher) error {
	return watchStream(ctx, c, "X.509 bundles", c.wl.FetchX509Bundles, &workloadpb.X509BundlesRequest{},
		parseX509Bundles, watcher.OnX509BundlesUpdate, watcher.OnX509BundlesWatchError)
}

// WatchJWTBundles watches for changes to the JWT bundles. The watcher
// receives the updated JWT bundles. See WatchX509Context for the retry rules.
func (c *Client) WatchJWTBundles(ctx context.Context, watcher JWTBundleWatcher) error {
	return watchStream(ctx, c, "JWT bundles", c.wl.FetchJWTBundles, &workloadpb.JWTBundlesRequest{},
		parseJWTBundles, watcher.OnJWTBundlesUpdate, watcher.OnJWTBundlesWatchError)
}

// WatchWITSVIDs watches for WIT-SVID updates. The watcher receives the updated
// WIT-SVIDs. The optional spiffeID filters updates to a specific identity.
//
// If the server returns codes.Unimplemented, the watch loop terminates without
// retrying (WAPI rule 1, WIT rule 17). See WatchX509Context for the other
// retry rules.
//
// Experimental: subject to change.
func (c *Client) WatchWITSVIDs(ctx context.Context, watcher WITSVIDWatcher, spiffeID string) error {
	return watchStream(ctx, c, "WIT-SVIDs", c.wl.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: spiffeID},
		parseWITSVIDs, watcher.OnWITSVIDsUpdate, watcher.OnWITSVIDsWatchError)
}

// WatchWITBundles watches for changes to the WIT bundles. The watcher receives
// the updated WIT bundle set.
//
// If the server returns codes.Unimplemented, the watch loop terminates without
// retrying (WAPI rule 1, WIT rule 17). See WatchX509Context for the other
// retry rules.
//
// Experimental: subject to change.
func (c *Client) WatchWITBundles(ctx context.Context, watcher WITBundleWatcher) error {
	return watchStream(ctx, c, "WIT bundles", c.wl.FetchWITBundles, &workloadpb.WITBundlesRequest{},
		parseWITBundles, watcher.OnWITBundlesUpdate, watcher.OnWITBundlesWatchError)
}

// watchStream runs the watch loop shared by every Watch method: open the
// stream, apply each valid message, and reconnect with backoff until ctx is
// done or the server gives an error that retrying cannot fix.
func watchStream[Req, Resp, T any](
	ctx context.Context,
	c *Client,
	what string,
	open func(context.Context, *Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error),
	req *Req,
	parse func(*Resp) (T, error),
	onUpdate func(T),
	onError func(error),
) error {
	log := c.log.With("watch", what)
	backoff := c.backoff.NewBackoff()
	for {
		err := watchOnce(ctx, open, req, func(resp *Resp) {
			v, err := parse(resp)
			if err != nil {
				log.Error("Discarding invalid Workload API response", "err", err)
				onError(err)
				return
			}
			backoff.Reset()
			onUpdate(v)
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = fmt.Errorf("workloadapi: watch %s: %w", what, err)
		onError(err)
		if code := status.Code(err); code == codes.InvalidArgument || code == codes.Unimplemented {
			log.Error("Canceling watch", "err", err)
			return err
		}
		delay := backoff.Next()
		log.Warn("Failed to watch the Workload API; retrying", "err", err, "retry_in", delay)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

// watchOnce opens one stream and hands every message to handle until the
// stream fails. It never returns nil.
func watchOnce[Req, Resp any](
	ctx context.Context,
	open func(context.Context, *Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error),
	req *Req,
	handle func(*Resp),
) error {
	ctx, cancel := context.WithCancel(withHeader(ctx))
	defer cancel()
	stream, err := open(ctx, req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) { // the server ended the stream
				return errStreamClosed
			}
			return err
		}
		handle(resp)
	}
}
