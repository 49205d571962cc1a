package adminserver

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver/internal/admission"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
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

func (s *Server) mintRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/svids/x509", s.mintX509)
	m.HandleFunc("POST /v1/svids/jwt", s.mintJWT)
}

// minter returns the minter, or answers that there is none.
func (s *Server) minter(w http.ResponseWriter) SVIDMinter {
	if s.cfg.Minter == nil {
		wire.WriteError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server mints no SVIDs on request")
	}
	return s.cfg.Minter
}

// mintTTL parses a requested lifetime.
func mintTTL(s string) (time.Duration, error) {
	ttl, err := wire.ParseDuration("ttl", s)
	switch {
	case err != nil:
		return 0, wire.Invalid("%v", err)
	case ttl < 0:
		return 0, wire.Invalid("ttl %s is negative", ttl)
	case ttl > MaxMintTTL:
		return 0, wire.Invalid("ttl %s is longer than %s", ttl, MaxMintTTL)
	}
	return ttl, nil
}

func (s *Server) mintX509(w http.ResponseWriter, r *http.Request) {
	m := s.minter(w)
	if m == nil {
		return
	}
	var req wire.MintX509Request
	if err := wire.ReadJSON(w, r, &req, MaxRequestBody); err != nil {
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
		s.fail(w, r, wire.Invalid("malformed CSR: %v", err))
		return
	}
	if err := csr.CheckSignature(); err != nil {
		s.fail(w, r, wire.Invalid("the CSR's signature does not verify: %v", err))
		return
	}
	if len(csr.URIs) != 1 {
		s.fail(w, r, wire.Invalid("the CSR must name exactly one URI, the SPIFFE ID; it names %d", len(csr.URIs)))
		return
	}
	id, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		s.fail(w, r, wire.Invalid("the CSR's URI: %v", err))
		return
	}
	if err := admission.CheckMintID(id, s.cfg.TrustDomain); err != nil {
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
	wire.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) mintJWT(w http.ResponseWriter, r *http.Request) {
	m := s.minter(w)
	if m == nil {
		return
	}
	var req wire.MintJWTRequest
	if err := wire.ReadJSON(w, r, &req, MaxRequestBody); err != nil {
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
		s.fail(w, r, wire.Invalid("spiffe_id: %v", err))
		return
	}
	if err := admission.CheckMintID(id, s.cfg.TrustDomain); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Audience) == 0 {
		s.fail(w, r, wire.Invalid("at least one audience is required"))
		return
	}
	for _, a := range req.Audience {
		if a == "" {
			s.fail(w, r, wire.Invalid("an audience must not be empty"))
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
	wire.WriteJSON(w, http.StatusOK, wire.MintJWTResponse{Token: token})
}
