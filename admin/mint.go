package admin

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// An SVIDMinter signs the SVIDs an operator asks for directly, outside
// registration, as SPIRE's x509 mint and jwt mint commands do: for
// bootstrapping and debugging. Its errors wrapping registry.ErrInvalid (a
// DNS name or lifetime the CA refuses) are reported to the caller with
// their message; any other is logged and answered as an internal error.
type SVIDMinter interface {
	// MintX509SVID certifies key for id, with dnsNames as DNS SANs, for
	// ttl (zero: the server's default X509-SVID lifetime; the CA may
	// shorten it) and returns the chain, leaf first.
	MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dnsNames []string, ttl time.Duration) ([]*x509.Certificate, error)
	// MintJWTSVID signs a JWT-SVID for id and the audience, for ttl
	// (zero: the server's default JWT-SVID lifetime), and returns it.
	MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error)
}

// MaxMintTTL bounds the lifetime an operator may ask a minted SVID for.
const MaxMintTTL = 10 * 365 * 24 * time.Hour

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

func (s *Server) mintRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/svids/x509", s.mintX509)
	m.HandleFunc("POST /v1/svids/jwt", s.mintJWT)
}

// minter returns the minter, or answers that there is none.
func (s *Server) minter(w http.ResponseWriter) SVIDMinter {
	if s.cfg.Minter == nil {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server mints no SVIDs on request")
	}
	return s.cfg.Minter
}

// mintID checks the SPIFFE ID of an SVID to mint: one of the trust
// domain, with a path, outside the namespace of the server and its agents
// (registry.Reserved), whose identities an operator must not hand out.
func (s *Server) mintID(id spiffeid.ID) error {
	switch {
	case id.TrustDomain() != s.cfg.TrustDomain:
		return invalid("%s is not in trust domain %s, the only one this server signs for", id, s.cfg.TrustDomain.Name())
	case id.Path() == "":
		return invalid("%s has no path: an SVID names a workload", id)
	case registry.Reserved(id):
		return invalid("%s is reserved for the server and its agents", id)
	}
	return nil
}

// mintTTL parses a requested lifetime.
func mintTTL(s string) (time.Duration, error) {
	ttl, err := wire.ParseDuration("ttl", s)
	switch {
	case err != nil:
		return 0, invalid("%v", err)
	case ttl < 0:
		return 0, invalid("ttl %s is negative", ttl)
	case ttl > MaxMintTTL:
		return 0, invalid("ttl %s is longer than %s", ttl, MaxMintTTL)
	}
	return ttl, nil
}

func (s *Server) mintX509(w http.ResponseWriter, r *http.Request) {
	m := s.minter(w)
	if m == nil {
		return
	}
	var req wire.MintX509Request
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ttl, err := mintTTL(req.TTL)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		s.fail(w, r, invalid("malformed CSR: %v", err))
		return
	}
	if err := csr.CheckSignature(); err != nil {
		s.fail(w, r, invalid("the CSR's signature does not verify: %v", err))
		return
	}
	if len(csr.URIs) != 1 {
		s.fail(w, r, invalid("the CSR must name exactly one URI, the SPIFFE ID; it names %d", len(csr.URIs)))
		return
	}
	id, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		s.fail(w, r, invalid("the CSR's URI: %v", err))
		return
	}
	if err := s.mintID(id); err != nil {
		s.fail(w, r, err)
		return
	}
	chain, err := m.MintX509SVID(r.Context(), id, csr.PublicKey, csr.DNSNames, ttl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := wire.MintX509Response{X509SVID: make([][]byte, len(chain)), RootCAs: [][]byte{}}
	for i, c := range chain {
		out.X509SVID[i] = c.Raw
	}
	if b := s.cfg.Bundle(); b != nil {
		for _, c := range b.X509Authorities() {
			out.RootCAs = append(out.RootCAs, c.Raw)
		}
	}
	p, _ := r.Context().Value(peerKey{}).(peer)
	s.log.Info("admin: minted an X509-SVID", "spiffe_id", id.String(), "dns_names", csr.DNSNames,
		"serial", chain[0].SerialNumber.Text(16), "expires_at", chain[0].NotAfter.UTC(), "uid", p.uid, "pid", p.pid)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) mintJWT(w http.ResponseWriter, r *http.Request) {
	m := s.minter(w)
	if m == nil {
		return
	}
	var req wire.MintJWTRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ttl, err := mintTTL(req.TTL)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := spiffeid.FromString(req.SPIFFEID)
	if err != nil {
		s.fail(w, r, invalid("spiffe_id: %v", err))
		return
	}
	if err := s.mintID(id); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Audience) == 0 {
		s.fail(w, r, invalid("at least one audience is required"))
		return
	}
	for _, a := range req.Audience {
		if a == "" {
			s.fail(w, r, invalid("an audience must not be empty"))
			return
		}
	}
	token, err := m.MintJWTSVID(r.Context(), id, req.Audience, ttl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	svid, err := jwtsvid.ParseInsecure(token, req.Audience)
	if err != nil {
		s.fail(w, r, fmt.Errorf("admin: the minted JWT-SVID does not parse: %w", err))
		return
	}
	p, _ := r.Context().Value(peerKey{}).(peer)
	s.log.Info("admin: minted a JWT-SVID", "spiffe_id", id.String(), "audience", req.Audience,
		"expires_at", svid.Expiry.UTC(), "uid", p.uid, "pid", p.pid)
	writeJSON(w, http.StatusOK, wire.MintJWTResponse{Token: token})
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
