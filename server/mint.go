package server

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// minter signs the SVIDs operators ask for through the admin API with the
// server's active authorities, with the lifetimes and JWT claims of the
// SVIDs it signs for agents.
type minter struct {
	s *Server
}

var _ adminserver.SVIDMinter = minter{}

// errNoAuthority is the error of a mint while the CA has no active
// authority of the kind.
var errNoAuthority = errors.New("server: the CA has no active authority yet")

// refused marks what the CA refused to sign as the caller's mistake (a DNS
// name or lifetime it does not allow), so that the admin API says why.
func refused(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return fmt.Errorf("%w: %w", registry.ErrInvalid, err)
}

func (m minter) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dnsNames []string, ttl time.Duration) ([]*x509.Certificate, error) {
	a := m.s.trust.X509Authority()
	if a == nil {
		return nil, errNoAuthority
	}
	if ttl == 0 {
		ttl = m.s.cfg.X509SVIDTTL
	}
	chain, err := a.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key, ID: id, DNSNames: dnsNames, TTL: ttl})
	if err != nil {
		return nil, refused(ctx, err)
	}
	return chain, nil
}

func (m minter) MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	a := m.s.trust.JWTAuthority()
	if a == nil {
		return "", errNoAuthority
	}
	if ttl == 0 {
		ttl = m.s.cfg.JWTSVIDTTL
	}
	token, err := a.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience, TTL: ttl, JTI: m.s.cfg.JWTSVIDJTI, Issuer: m.s.cfg.JWTIssuer})
	if err != nil {
		return "", refused(ctx, err)
	}
	return token, nil
}
