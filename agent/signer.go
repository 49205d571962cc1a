package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// remoteSigner has the server sign the SVIDs the agent serves: it sends a
// CSR for each key the issuer generated, and checks what comes back.
type remoteSigner struct {
	a *Agent
}

var _ issuer.Signer = remoteSigner{}

// SignX509SVIDs implements issuer.Signer. The server decides the
// lifetimes, from the entries.
func (s remoteSigner) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	in := make([]nodeapi.X509SVIDRequest, len(reqs))
	for i, r := range reqs {
		csr, err := nodeapi.NewCSR(r.Key, r.Entry.SPIFFEID)
		if err != nil {
			return nil, err
		}
		in[i] = nodeapi.X509SVIDRequest{EntryID: r.Entry.ID, CSR: csr}
	}
	res, err := s.a.client().SignX509SVIDs(ctx, in)
	if err != nil {
		s.a.log.Warn("the server did not sign X509-SVIDs", "count", len(reqs), "err", err)
		return nil, fmt.Errorf("agent: %w: %w", endpoint.ErrUnavailable, err)
	}
	out := make([]issuer.X509SVIDResult, len(reqs))
	for i, r := range res {
		out[i] = issuer.X509SVIDResult{Certificates: r.Certificates, Err: r.Err}
		if r.Err == nil && !samePublicKey(r.Certificates[0].PublicKey, reqs[i].Key.Public()) {
			out[i] = issuer.X509SVIDResult{Err: errors.New("agent: the server certified another key")}
		}
	}
	return out, nil
}

// SignJWTSVID implements issuer.Signer. The server decides the lifetime.
func (s remoteSigner) SignJWTSVID(ctx context.Context, req issuer.JWTSVIDRequest) (string, error) {
	token, err := s.a.client().SignJWTSVID(ctx, req.Entry.ID, req.Audience)
	if err != nil {
		if nodeapi.IsRefused(err) {
			return "", fmt.Errorf("agent: %w", err)
		}
		return "", fmt.Errorf("agent: %w: %w", endpoint.ErrUnavailable, err)
	}
	return token, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
