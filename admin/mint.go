package admin

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// A MintedX509SVID is an X509-SVID the server minted, with what verifies
// it.
type MintedX509SVID struct {
	// Chain is the SVID's certificate chain, leaf first.
	Chain []*x509.Certificate
	// RootCAs are the X.509 authorities of the trust domain's bundle.
	RootCAs []*x509.Certificate
}

// A MintedJWTSVID is a JWT-SVID the server minted.
type MintedJWTSVID struct {
	// Token is the serialized JWT-SVID. It is a credential: keep it out of
	// logs.
	Token string
	// ExpiresAt is its "exp" claim.
	ExpiresAt time.Time
}

// MintX509SVID has the server sign an X509-SVID for the SPIFFE ID and DNS
// names of csr (a DER PKCS#10 request, whose key stays with the caller),
// for ttl (zero: the server's default), and returns it with the trust
// domain's X.509 authorities. An ID outside the trust domain, reserved
// for the server and its agents, or without a path, and a CSR that does
// not verify, wrap registry.ErrInvalid.
func (c *Client) MintX509SVID(ctx context.Context, csr []byte, ttl time.Duration) (MintedX509SVID, error) {
	var out wire.MintX509Response
	if err := c.doJSON(ctx, http.MethodPost, "/v1/svids/x509", wire.MintX509Request{CSR: csr, TTL: wire.FormatDuration(ttl)}, &out); err != nil {
		return MintedX509SVID{}, err
	}
	if len(out.X509SVID) == 0 {
		return MintedX509SVID{}, errors.New("admin: malformed answer: no certificate")
	}
	var m MintedX509SVID
	for _, list := range []struct {
		der [][]byte
		dst *[]*x509.Certificate
	}{{out.X509SVID, &m.Chain}, {out.RootCAs, &m.RootCAs}} {
		for _, der := range list.der {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return MintedX509SVID{}, fmt.Errorf("admin: malformed certificate in answer: %w", err)
			}
			*list.dst = append(*list.dst, cert)
		}
	}
	return m, nil
}

// MintJWTSVID has the server sign a JWT-SVID for id and the audience, for
// ttl (zero: the server's default).
func (c *Client) MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (MintedJWTSVID, error) {
	var out wire.MintJWTResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/svids/jwt", wire.MintJWTRequest{SPIFFEID: id.String(), Audience: audience, TTL: wire.FormatDuration(ttl)}, &out); err != nil {
		return MintedJWTSVID{}, err
	}
	svid, err := jwtsvid.ParseInsecure(out.Token, audience)
	if err != nil {
		return MintedJWTSVID{}, fmt.Errorf("admin: malformed token in answer: %w", err)
	}
	return MintedJWTSVID{Token: out.Token, ExpiresAt: svid.Expiry}, nil
}
