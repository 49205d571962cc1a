package workloadapi

import (
	"context"
	"errors"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// The functions below each create a short-lived Client, make one call and
// close the client again. They return the call's error joined with any
// error from Close.

// FetchX509SVID fetches the default X509-SVID, i.e. the first in the list
// returned by the Workload API. See Client.FetchX509SVID.
func FetchX509SVID(ctx context.Context, options ...ClientOption) (*x509svid.SVID, error) {
	return withClient(ctx, options, func(c *Client) (*x509svid.SVID, error) { return c.FetchX509SVID(ctx) })
}

// FetchX509SVIDs fetches all X509-SVIDs. See Client.FetchX509SVIDs.
func FetchX509SVIDs(ctx context.Context, options ...ClientOption) ([]*x509svid.SVID, error) {
	return withClient(ctx, options, func(c *Client) ([]*x509svid.SVID, error) { return c.FetchX509SVIDs(ctx) })
}

// FetchX509Bundles fetches the X.509 bundles. See Client.FetchX509Bundles.
func FetchX509Bundles(ctx context.Context, options ...ClientOption) (*x509bundle.Set, error) {
	return withClient(ctx, options, func(c *Client) (*x509bundle.Set, error) { return c.FetchX509Bundles(ctx) })
}

// FetchX509Context fetches the X.509 context, which contains both X509-SVIDs
// and X.509 bundles. See Client.FetchX509Context.
func FetchX509Context(ctx context.Context, options ...ClientOption) (*X509Context, error) {
	return withClient(ctx, options, func(c *Client) (*X509Context, error) { return c.FetchX509Context(ctx) })
}

// WatchX509Context watches for updates to the X.509 context until ctx is
// done or the watch fails for good. See Client.WatchX509Context.
func WatchX509Context(ctx context.Context, watcher X509ContextWatcher, options ...ClientOption) error {
	_, err := withClient(ctx, options, func(c *Client) (struct{}, error) {
		return struct{}{}, c.WatchX509Context(ctx, watcher)
	})
	return err
}

// WatchX509Bundles watches for changes to the X.509 bundles. See
// Client.WatchX509Bundles.
func WatchX509Bundles(ctx context.Context, watcher X509BundleWatcher, options ...ClientOption) error {
	_, err := withClient(ctx, options, func(c *Client) (struct{}, error) {
		return struct{}{}, c.WatchX509Bundles(ctx, watcher)
	})
	return err
}

// FetchJWTSVID fetches a JWT-SVID. See Client.FetchJWTSVID.
func FetchJWTSVID(ctx context.Context, params jwtsvid.Params, options ...ClientOption) (*jwtsvid.SVID, error) {
	return withClient(ctx, options, func(c *Client) (*jwtsvid.SVID, error) { return c.FetchJWTSVID(ctx, params) })
}

// FetchJWTSVIDs fetches all JWT-SVIDs. See Client.FetchJWTSVIDs.
func FetchJWTSVIDs(ctx context.Context, params jwtsvid.Params, options ...ClientOption) ([]*jwtsvid.SVID, error) {
	return withClient(ctx, options, func(c *Client) ([]*jwtsvid.SVID, error) { return c.FetchJWTSVIDs(ctx, params) })
}

// FetchJWTBundles fetches the JWT bundles for JWT-SVID validation, keyed by a
// SPIFFE ID of the trust domain to which they belong. See
// Client.FetchJWTBundles.
func FetchJWTBundles(ctx context.Context, options ...ClientOption) (*jwtbundle.Set, error) {
	return withClient(ctx, options, func(c *Client) (*jwtbundle.Set, error) { return c.FetchJWTBundles(ctx) })
}

// WatchJWTBundles watches for changes to the JWT bundles. See
// Client.WatchJWTBundles.
func WatchJWTBundles(ctx context.Context, watcher JWTBundleWatcher, options ...ClientOption) error {
	_, err := withClient(ctx, options, func(c *Client) (struct{}, error) {
		return struct{}{}, c.WatchJWTBundles(ctx, watcher)
	})
	return err
}

// ValidateJWTSVID validates the JWT-SVID token. The parsed and validated
// JWT-SVID is returned. See Client.ValidateJWTSVID.
func ValidateJWTSVID(ctx context.Context, token, audience string, options ...ClientOption) (*jwtsvid.SVID, error) {
	return withClient(ctx, options, func(c *Client) (*jwtsvid.SVID, error) { return c.ValidateJWTSVID(ctx, token, audience) })
}

// FetchWITSVID fetches the default WIT-SVID using a short-lived client. See
// Client.FetchWITSVID.
//
// Experimental: subject to change.
func FetchWITSVID(ctx context.Context, spiffeID string, options ...ClientOption) (*witsvid.SVID, error) {
	return withClient(ctx, options, func(c *Client) (*witsvid.SVID, error) { return c.FetchWITSVID(ctx, spiffeID) })
}

// FetchWITSVIDs fetches all WIT-SVIDs using a short-lived client. See
// Client.FetchWITSVIDs.
//
// Experimental: subject to change.
func FetchWITSVIDs(ctx context.Context, spiffeID string, options ...ClientOption) ([]*witsvid.SVID, error) {
	return withClient(ctx, options, func(c *Client) ([]*witsvid.SVID, error) { return c.FetchWITSVIDs(ctx, spiffeID) })
}

// FetchWITBundles fetches WIT bundles using a short-lived client. See
// Client.FetchWITBundles.
//
// Experimental: subject to change.
func FetchWITBundles(ctx context.Context, options ...ClientOption) (*witbundle.Set, error) {
	return withClient(ctx, options, func(c *Client) (*witbundle.Set, error) { return c.FetchWITBundles(ctx) })
}

// withClient runs fn with a new Client and closes it afterwards.
func withClient[T any](ctx context.Context, options []ClientOption, fn func(*Client) (T, error)) (_ T, err error) {
	c, err := New(ctx, options...)
	if err != nil {
		var zero T
		return zero, err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	return fn(c)
}
