package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Client is a Workload API client. It is safe for concurrent use; several
// calls and watches can share one Client and its connection.
type Client struct {
	conn    *grpc.ClientConn
	wl      workloadpb.WorkloadAPIClient
	log     *slog.Logger
	backoff BackoffStrategy
}

// New dials the Workload API and returns a client. The client should be closed
// when no longer in use to free underlying resources.
//
// The address comes from WithAddr, else from SPIFFE_ENDPOINT_SOCKET (WE rule
// 8); it is validated by TargetFromAddress. The connection uses plaintext
// gRPC (WE rule 4) and is established lazily, on the first call, and
// re-established as needed; ctx only bounds construction, so New does not
// fail when the endpoint is down.
func New(ctx context.Context, options ...ClientOption) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	cfg := clientConfig{backoffStrategy: defaultBackoffStrategy{}}
	for _, opt := range options {
		opt.configureClient(&cfg)
	}
	target, osOptions, err := dialTarget(&cfg)
	if err != nil {
		return nil, err
	}
	if cfg.backoffStrategy == nil {
		cfg.backoffStrategy = defaultBackoffStrategy{}
	}
	dialOptions := append(append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, osOptions...), cfg.dialOptions...)
	conn, err := grpc.NewClient(target, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("workloadapi: failed to dial the Workload API: %w", err)
	}
	return &Client{
		conn:    conn,
		wl:      workloadpb.NewWorkloadAPIClient(conn),
		log:     logger.ToSlog(cfg.log),
		backoff: cfg.backoffStrategy,
	}, nil
}

// Close closes the client's connection. Calls and watches under way fail.
// Closing a closed client returns an error from the gRPC library.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("workloadapi: %w", err)
	}
	return nil
}

// FetchX509SVID fetches the default X509-SVID, i.e. the first in the list
// returned by the Workload API (WAPI rule 9).
//
// Stricter than go-spiffe, which parses the first entry only: every SVID of
// the response is checked as in FetchX509Context, and a malformed one is an
// error (WAPI rule 6). Bundles must be present but are not parsed; use
// FetchX509Context to get them.
func (c *Client) FetchX509SVID(ctx context.Context) (*x509svid.SVID, error) {
	svids, err := c.FetchX509SVIDs(ctx)
	if err != nil {
		return nil, err
	}
	return svids[0], nil
}

// FetchX509SVIDs fetches all X509-SVIDs. A later SVID whose non-empty hint
// repeats an earlier one is skipped (WAPI rule 8).
func (c *Client) FetchX509SVIDs(ctx context.Context) ([]*x509svid.SVID, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	if err != nil {
		return nil, wrapCallErr("FetchX509SVID", err)
	}
	x509Ctx, err := parseX509SVIDResponse(resp, false)
	if err != nil {
		return nil, err
	}
	return x509Ctx.SVIDs, nil
}

// FetchX509Context fetches the X.509 context, which contains both X509-SVIDs
// and X.509 bundles.
//
// The response must hold at least one SVID; every SVID must pass
// x509svid.ParseRaw, and its spiffe_id field must equal the ID in its
// certificate and its bundle must be present (WAPI rules 6, 10: stricter than
// go-spiffe, which ignores the field); federated bundle keys must be trust
// domain IDs of the form "spiffe://example.org". Any violation fails the
// whole call.
func (c *Client) FetchX509Context(ctx context.Context) (*X509Context, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	if err != nil {
		return nil, wrapCallErr("FetchX509SVID", err)
	}
	return parseX509Context(resp)
}

// FetchX509Bundles fetches the X.509 bundles. The response must hold at least
// one bundle (WAPI rule 11).
func (c *Client) FetchX509Bundles(ctx context.Context) (*x509bundle.Set, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchX509Bundles, &workloadpb.X509BundlesRequest{})
	if err != nil {
		return nil, wrapCallErr("FetchX509Bundles", err)
	}
	return parseX509Bundles(resp)
}

// FetchJWTSVID fetches a JWT-SVID: the first one the Workload API returns,
// i.e. the default identity when params.Subject is zero.
//
// Every returned token must parse (jwtsvid.ParseInsecure), carry one of the
// requested audiences, and have the SPIFFE ID its spiffe_id field names.
func (c *Client) FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error) {
	svids, err := c.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return nil, err
	}
	return svids[0], nil
}

// FetchJWTSVIDs fetches all JWT-SVIDs. A later SVID whose non-empty hint
// repeats an earlier one is skipped (WAPI rule 8).
func (c *Client) FetchJWTSVIDs(ctx context.Context, params jwtsvid.Params) ([]*jwtsvid.SVID, error) {
	audience := audienceOf(params)
	req := &workloadpb.JWTSVIDRequest{Audience: audience}
	if !params.Subject.IsZero() {
		req.SpiffeId = params.Subject.String()
	}
	resp, err := c.wl.FetchJWTSVID(withHeader(ctx), req)
	if err != nil {
		return nil, wrapCallErr("FetchJWTSVID", err)
	}
	return parseJWTSVIDs(resp, audience)
}

// FetchJWTBundles fetches the JWT bundles for JWT-SVID validation, keyed by a
// SPIFFE ID of the trust domain to which they belong.
func (c *Client) FetchJWTBundles(ctx context.Context) (*jwtbundle.Set, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchJWTBundles, &workloadpb.JWTBundlesRequest{})
	if err != nil {
		return nil, wrapCallErr("FetchJWTBundles", err)
	}
	return parseJWTBundles(resp)
}

// ValidateJWTSVID validates the JWT-SVID token. The parsed and validated
// JWT-SVID is returned.
//
// The Workload API validates the token (WAPI rule 14); the returned SVID is
// then read from the token itself, without checking the signature again. Unlike
// go-spiffe, the response is not ignored: the SPIFFE ID it names must be the
// token's subject.
func (c *Client) ValidateJWTSVID(ctx context.Context, token, audience string) (*jwtsvid.SVID, error) {
	resp, err := c.wl.ValidateJWTSVID(withHeader(ctx), &workloadpb.ValidateJWTSVIDRequest{
		Svid:     token,
		Audience: audience,
	})
	if err != nil {
		return nil, wrapCallErr("ValidateJWTSVID", err)
	}
	svid, err := jwtsvid.ParseInsecure(token, []string{audience})
	if err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	if resp.GetSpiffeId() != svid.ID.String() {
		return nil, fmt.Errorf("workloadapi: validation response names SPIFFE ID %q, token subject is %q", resp.GetSpiffeId(), svid.ID)
	}
	return svid, nil
}

// FetchWITSVID fetches the default WIT-SVID (i.e. the first in the list
// returned by the Workload API). An optional SPIFFE ID may be provided to
// request a specific WIT-SVID.
//
// Experimental: subject to change.
func (c *Client) FetchWITSVID(ctx context.Context, spiffeID string) (*witsvid.SVID, error) {
	svids, err := c.FetchWITSVIDs(ctx, spiffeID)
	if err != nil {
		return nil, err
	}
	return svids[0], nil
}

// FetchWITSVIDs fetches all WIT-SVIDs. An optional SPIFFE ID may be provided
// to request a specific WIT-SVID.
//
// Every entry must carry a token that passes witsvid.ParseInsecure, the
// SPIFFE ID of that token in its spiffe_id field, and a private key (a JWK)
// that matches the token's cnf key; stricter than go-spiffe, which does not
// compare keys.
//
// Experimental: subject to change.
func (c *Client) FetchWITSVIDs(ctx context.Context, spiffeID string) ([]*witsvid.SVID, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchWITSVID, &workloadpb.WITSVIDRequest{SpiffeId: spiffeID})
	if err != nil {
		return nil, wrapCallErr("FetchWITSVID", err)
	}
	return parseWITSVIDs(resp)
}

// FetchWITBundles fetches the WIT bundles for WIT-SVID validation, keyed by
// the SPIFFE ID of the trust domain to which they belong.
//
// Experimental: subject to change.
func (c *Client) FetchWITBundles(ctx context.Context) (*witbundle.Set, error) {
	resp, err := fetchFirst(ctx, c.wl.FetchWITBundles, &workloadpb.WITBundlesRequest{})
	if err != nil {
		return nil, wrapCallErr("FetchWITBundles", err)
	}
	return parseWITBundles(resp)
}

// fetchFirst opens a server stream and returns its first message, then ends
// the stream.
func fetchFirst[Req, Resp any](ctx context.Context, open func(context.Context, *Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error), req *Req) (*Resp, error) {
	ctx, cancel := context.WithCancel(withHeader(ctx))
	defer cancel() // ends the stream
	stream, err := open(ctx, req)
	if err != nil {
		return nil, err
	}
	return stream.Recv()
}

// withHeader adds the security header to the outgoing metadata of ctx (WE
// rule 6), replacing any value the caller may have set for the key, so that
// the server sees exactly one value "true".
func withHeader(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(workloadpb.HeaderKey, workloadpb.HeaderValue)
	return metadata.NewOutgoingContext(ctx, md)
}

// audienceOf returns the audiences of params in request order.
func audienceOf(params jwtsvid.Params) []string {
	return append([]string{params.Audience}, slices.Clone(params.ExtraAudiences)...)
}

// wrapCallErr prefixes an RPC error; status.Code still finds its code.
func wrapCallErr(rpc string, err error) error {
	return fmt.Errorf("workloadapi: %s: %w", rpc, err)
}

// addressOrDefault returns the configured address, else SPIFFE_ENDPOINT_SOCKET.
func (cfg *clientConfig) addressOrDefault() (string, error) {
	if cfg.address != "" {
		return cfg.address, nil
	}
	addr, ok := GetDefaultAddress()
	if !ok || addr == "" {
		return "", errors.New("workloadapi: workload endpoint socket address is not configured")
	}
	return addr, nil
}
