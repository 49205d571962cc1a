// Package mint issues credentials on demand, outside the node API: the
// SVIDs operators ask for through the admin API and those the token
// exchange grants, signed by the server's active authorities; and the
// admin API's join tokens, with the node alias entry of the agent a token
// admits.
package mint

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// SVIDs signs the SVIDs operators ask for through the admin API, and
// those the token exchange grants, with the server's active authorities,
// with the lifetimes and JWT claims of the SVIDs it signs for agents. It
// implements adminserver.SVIDMinter and exchange.Minter.
type SVIDs struct {
	// Authority holds the active authorities that sign.
	Authority ca.Authority
	// X509SVIDTTL and JWTSVIDTTL are the lifetimes of an SVID asked for
	// without one; zero leaves them to the CA.
	X509SVIDTTL, JWTSVIDTTL time.Duration
	// JWTSVIDJTI gives every JWT-SVID a random "jti" claim.
	JWTSVIDJTI bool
	// JWTIssuer, when not empty, is the "iss" claim of every JWT-SVID (see
	// CheckIssuer).
	JWTIssuer string
}

var (
	_ adminserver.SVIDMinter = SVIDs{}
	_ exchange.Minter        = SVIDs{}
)

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

// MintX509SVID implements adminserver.SVIDMinter and exchange.Minter: it
// certifies key for id with the active X.509 CA.
func (m SVIDs) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dnsNames []string, ttl time.Duration) ([]*x509.Certificate, error) {
	a := m.Authority.X509Authority()
	if a == nil {
		return nil, errNoAuthority
	}
	if ttl == 0 {
		ttl = m.X509SVIDTTL
	}
	chain, err := a.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key, ID: id, DNSNames: dnsNames, TTL: ttl})
	if err != nil {
		return nil, refused(ctx, err)
	}
	return chain, nil
}

// MintJWTSVID implements adminserver.SVIDMinter and exchange.Minter: it signs
// a JWT-SVID for id with the active JWT key.
func (m SVIDs) MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	a := m.Authority.JWTAuthority()
	if a == nil {
		return "", errNoAuthority
	}
	if ttl == 0 {
		ttl = m.JWTSVIDTTL
	}
	token, err := a.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience, TTL: ttl, JTI: m.JWTSVIDJTI, Issuer: m.JWTIssuer})
	if err != nil {
		return "", refused(ctx, err)
	}
	return token, nil
}

// CheckIssuer checks a JWT issuer, as SVIDs.JWTIssuer takes it: an absolute http or https URL with a
// host, no query, fragment or user info, at most 2048 bytes, as OpenID
// Connect Discovery requires of an issuer identifier (https, but plain
// http serves tests and providers behind a proxy).
func CheckIssuer(iss string) error {
	if len(iss) > 2048 {
		return errors.New("longer than 2048 bytes")
	}
	u, err := url.Parse(iss)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL: %w", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an http or https URL", iss)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(iss, "#"):
		return fmt.Errorf("%q must be a URL with a host and no user info, query or fragment", iss)
	}
	return nil
}
