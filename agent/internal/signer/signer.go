package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spiffekit/spiffekit/internal/parallel"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// errNotConnected fails the signing requests made while the agent has no
// client: while its Run is not running.
var errNotConnected = fmt.Errorf("agent: %w: not connected to a server", endpoint.ErrUnavailable)

// Remote has the agent's server sign the SVIDs the agent serves: it sends
// a CSR for each key the issuer generated, and checks what comes back. It
// is safe for concurrent use.
type Remote struct {
	client func() *nodeapi.Client
	log    *slog.Logger
}

var _ issuer.WITSigner = Remote{}

// New returns the Remote that signs through the client that client
// returns when called, for each request: the agent's current one, or nil
// while it has none, which fails the request. Failures go to log; nil
// discards them.
func New(client func() *nodeapi.Client, log *slog.Logger) Remote {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return Remote{client: client, log: log}
}

// SignX509SVIDs implements issuer.Signer. The server decides the
// lifetimes, from the entries.
func (s Remote) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	cli := s.client()
	if cli == nil {
		return nil, errNotConnected
	}
	in, err := csrs(reqs)
	if err != nil {
		return nil, err
	}
	res, err := cli.SignX509SVIDs(ctx, in)
	if err != nil {
		s.log.Warn("the server did not sign X509-SVIDs", "count", len(reqs), "err", err)
		return nil, fmt.Errorf("agent: %w: %w", endpoint.ErrUnavailable, err)
	}
	out := make([]issuer.X509SVIDResult, len(reqs))
	for i, r := range res {
		out[i] = issuer.X509SVIDResult{Certificates: r.Certificates, Err: r.Err}
		if r.Err == nil && !publickey.Equal(r.Certificates[0].PublicKey, reqs[i].Key.Public()) {
			out[i] = issuer.X509SVIDResult{Err: errors.New("agent: the server certified another key")}
		}
	}
	return out, nil
}

// SignJWTSVID implements issuer.Signer. The server decides the lifetime.
func (s Remote) SignJWTSVID(ctx context.Context, req issuer.JWTSVIDRequest) (string, error) {
	cli := s.client()
	if cli == nil {
		return "", errNotConnected
	}
	token, err := cli.SignJWTSVID(ctx, req.Entry.ID, req.Audience)
	if err != nil {
		if nodeapi.IsRefused(err) {
			// The server no longer grants this agent the entry (deleted,
			// moved, or the agent's view is behind): the next sync tells,
			// and meanwhile the workload is told to retry.
			s.log.Warn("the server refused to sign a JWT-SVID", "entry", req.Entry.ID, "err", err)
			return "", fmt.Errorf("agent: %w: the server refused: %w", endpoint.ErrUnavailable, err)
		}
		return "", fmt.Errorf("agent: %w: %w", endpoint.ErrUnavailable, err)
	}
	return token, nil
}

// SignWITSVID implements issuer.WITSigner: the server binds the public
// key of the key the issuer generated, which never leaves the agent. The
// server decides the lifetime. A server that does not issue WIT-SVIDs
// makes it fail with an error wrapping endpoint.ErrUnimplemented.
func (s Remote) SignWITSVID(ctx context.Context, req issuer.WITSVIDRequest) (string, error) {
	cli := s.client()
	if cli == nil {
		return "", errNotConnected
	}
	token, err := cli.SignWITSVID(ctx, req.Entry.ID, req.Key.Public(), req.KeyAlgorithm)
	switch {
	case errors.Is(err, nodeapi.ErrNoWITSVIDs):
		return "", fmt.Errorf("agent: %w: %w", endpoint.ErrUnimplemented, err)
	case nodeapi.IsRefused(err):
		s.log.Warn("the server refused to sign a WIT-SVID", "entry", req.Entry.ID, "err", err)
		return "", fmt.Errorf("agent: %w: the server refused: %w", endpoint.ErrUnavailable, err)
	case err != nil:
		return "", fmt.Errorf("agent: %w: %w", endpoint.ErrUnavailable, err)
	}
	return token, nil
}

// csrs makes the CSRs of a batch on every core: each is one signature.
func csrs(reqs []issuer.X509SVIDRequest) ([]nodeapi.X509SVIDRequest, error) {
	in := make([]nodeapi.X509SVIDRequest, len(reqs))
	errs := make([]error, len(reqs))
	parallel.For(len(reqs), func(i int) {
		csr, err := nodeapi.NewCSR(reqs[i].Key, reqs[i].Entry.SPIFFEID)
		in[i], errs[i] = nodeapi.X509SVIDRequest{EntryID: reqs[i].Entry.ID, CSR: csr}, err
	})
	return in, errors.Join(errs...)
}
