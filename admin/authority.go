package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// An Authority describes one X.509 CA, JWT signing key or WIT signing key
// (servers that sign WIT-SVIDs only) of one of the servers of the trust
// domain, as the server that answers knows it: its own
// at once, the other servers' as they last published them.
type Authority struct {
	// Kind is the kind of authority.
	Kind registry.AuthorityKind
	// ID identifies the authority: the lower-case hexadecimal SubjectKeyId
	// of an X.509 CA's certificate, the kid of a JWT or WIT key.
	ID string
	// ServerID is the ID of the server whose CA holds the authority.
	ServerID string
	// Local says that the server that answered holds the authority.
	Local bool
	// State is where the authority is in its rotation.
	State registry.AuthorityState
	// NotAfter is the end of its validity.
	NotAfter time.Time
	// Tainted says that what the authority signed is being replaced: its
	// server tainted it, or a taint or revocation is recorded for it.
	Tainted bool
	// Revoked says that a revocation is recorded for the authority: no
	// server hands it out in the bundle any more, and its server drops it
	// from its CA (until then it is still listed).
	Revoked bool
	// Pending says that a taint or revocation recorded through another
	// server is not yet applied by the authority's own server (which may
	// be away). Every server honours it meanwhile.
	Pending bool
}

// An AuthorityManager operates the CA of the trust domain for the admin
// API, as the localauthority API of SPIRE does. Prepare and activate act on
// the CA of the server that answers; taint and revoke on an authority of
// any server of the trust domain, which every server then honours.
//
// Errors wrapping registry.ErrNotFound (no such authority),
// registry.ErrInvalid or [ErrFailedPrecondition] (the authority's state
// forbids the action, such as tainting the active authority) are reported
// to the caller with their message; any other error is logged and answered
// as an internal error.
type AuthorityManager interface {
	// Authorities describes every authority of every live server of the
	// trust domain: X.509 CAs, then JWT keys, then WIT keys, each kind
	// oldest first.
	Authorities(ctx context.Context) ([]Authority, error)
	// PrepareAuthority makes a new authority of the kind on the answering
	// server's CA and publishes it in the bundle, replacing a prepared one.
	PrepareAuthority(ctx context.Context, kind registry.AuthorityKind) (Authority, error)
	// ActivateAuthority makes the prepared authority of the kind the active
	// one; the active one becomes old. A non-empty id must be the prepared
	// authority's ID, so that an operator activates what they checked.
	ActivateAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error)
	// TaintAuthority taints an old authority, of any server: everything it
	// signed is replaced early.
	TaintAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error)
	// RevokeAuthority takes an authority that is not active, of any
	// server, out of the bundle.
	RevokeAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error)
}

func authorityFromJSON(j wire.Authority) (Authority, error) {
	switch {
	case j.Kind != registry.AuthorityX509 && j.Kind != registry.AuthorityJWT && j.Kind != registry.AuthorityWIT:
		return Authority{}, fmt.Errorf("unknown authority kind %q", j.Kind)
	case j.State != registry.AuthorityPrepared && j.State != registry.AuthorityActive && j.State != registry.AuthorityOld:
		return Authority{}, fmt.Errorf("unknown authority state %q", j.State)
	case j.ID == "":
		return Authority{}, fmt.Errorf("authority ID is missing")
	}
	return Authority(j), nil
}

// ParseAuthorityKind parses "x509", "jwt" or "wit", as the API and the
// command line spell the kinds. Other values fail with an error wrapping
// registry.ErrInvalid.
func ParseAuthorityKind(s string) (registry.AuthorityKind, error) {
	switch k := registry.AuthorityKind(s); k {
	case registry.AuthorityX509, registry.AuthorityJWT, registry.AuthorityWIT:
		return k, nil
	}
	return "", invalid("unknown authority kind %q (want x509, jwt or wit)", s)
}

// authorityAction is one of the operations of an AuthorityManager, by the
// name of its route.
type authorityAction string

const (
	actionPrepare  authorityAction = "prepare"
	actionActivate authorityAction = "activate"
	actionTaint    authorityAction = "taint"
	actionRevoke   authorityAction = "revoke"
)

// past returns the action in the past tense, for the log.
func (a authorityAction) past() string {
	if a == actionTaint {
		return "tainted"
	}
	return string(a) + "d"
}

func (s *Server) authorityRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /v1/authorities", s.listAuthorities)
	for _, a := range []authorityAction{actionPrepare, actionActivate, actionTaint, actionRevoke} {
		m.HandleFunc("POST /v1/authorities/{kind}/"+string(a), func(w http.ResponseWriter, r *http.Request) {
			s.authorityAction(w, r, a)
		})
	}
}

// authorities returns the manager, or answers that there is none.
func (s *Server) authorities(w http.ResponseWriter) AuthorityManager {
	if s.cfg.Authorities == nil {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server has no CA to operate")
	}
	return s.cfg.Authorities
}

func (s *Server) listAuthorities(w http.ResponseWriter, r *http.Request) {
	m := s.authorities(w)
	if m == nil {
		return
	}
	auths, err := m.Authorities(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]wire.Authority, 0, len(auths))
	for _, a := range auths {
		out = append(out, wire.Authority(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"authorities": out})
}

func (s *Server) authorityAction(w http.ResponseWriter, r *http.Request, action authorityAction) {
	m := s.authorities(w)
	if m == nil {
		return
	}
	kind, err := ParseAuthorityKind(r.PathValue("kind"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var id string
	switch action {
	case actionTaint, actionRevoke:
		var req wire.AuthorityID
		if err := readJSON(w, r, &req); err != nil {
			s.fail(w, r, err)
			return
		}
		if id = req.AuthorityID; id == "" {
			s.fail(w, r, invalid("the authority ID is required"))
			return
		}
	case actionActivate:
		// The ID is optional: no body, or one naming the prepared authority.
		if r.ContentLength != 0 {
			var req wire.AuthorityID
			if err := readJSON(w, r, &req); err != nil {
				s.fail(w, r, err)
				return
			}
			id = req.AuthorityID
		}
	}
	var a Authority
	switch action {
	case actionPrepare:
		a, err = m.PrepareAuthority(r.Context(), kind)
	case actionActivate:
		a, err = m.ActivateAuthority(r.Context(), kind, id)
	case actionTaint:
		a, err = m.TaintAuthority(r.Context(), kind, id)
	case actionRevoke:
		a, err = m.RevokeAuthority(r.Context(), kind, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: authority "+action.past(), "kind", string(a.Kind), "authority_id", a.ID,
		"server_id", a.ServerID, "state", string(a.State), "pending", a.Pending)
	writeJSON(w, http.StatusOK, wire.Authority(a))
}

// Authorities describes every authority of every live server of the trust
// domain (see [AuthorityManager.Authorities]).
func (c *Client) Authorities(ctx context.Context) ([]Authority, error) {
	var out struct {
		Authorities []wire.Authority `json:"authorities"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/authorities", nil, nil, &out); err != nil {
		return nil, err
	}
	auths := make([]Authority, 0, len(out.Authorities))
	for _, j := range out.Authorities {
		a, err := authorityFromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("admin: malformed authority in answer: %w", err)
		}
		auths = append(auths, a)
	}
	return auths, nil
}

// PrepareAuthority makes a new authority of the kind on the server's CA,
// published in the bundle but not signing yet, and returns it. A prepared
// authority that exists is replaced.
func (c *Client) PrepareAuthority(ctx context.Context, kind registry.AuthorityKind) (Authority, error) {
	return c.authorityAction(ctx, kind, actionPrepare, "")
}

// ActivateAuthority makes the server's prepared authority of the kind the
// one that signs, and returns it; the active one becomes old. A non-empty
// id must be the prepared authority's ID. Without a prepared authority, or
// with the ID of another one, the error wraps [ErrFailedPrecondition].
// Relying parties that have not yet fetched the bundle holding it reject
// what it signs: prepare, wait for the bundle to spread, then activate.
func (c *Client) ActivateAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, actionActivate, id)
}

// TaintAuthority taints the old authority with the given ID, held by any
// server of the trust domain, and returns it: agents and workloads replace
// what it signed early. The active or a prepared authority cannot be
// tainted (the error wraps [ErrFailedPrecondition]): prepare and activate
// another first. An unknown ID wraps registry.ErrNotFound.
func (c *Client) TaintAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, actionTaint, id)
}

// RevokeAuthority takes the authority with the given ID, held by any server
// of the trust domain, out of the bundle every server hands out, and
// returns it: what it signed stops verifying. The active authority cannot
// be revoked (the error wraps [ErrFailedPrecondition]); taint an old one
// first, and revoke it once what it signed has been replaced.
func (c *Client) RevokeAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, actionRevoke, id)
}

func (c *Client) authorityAction(ctx context.Context, kind registry.AuthorityKind, action authorityAction, id string) (Authority, error) {
	if _, err := ParseAuthorityKind(string(kind)); err != nil {
		return Authority{}, err
	}
	path := "/v1/authorities/" + url.PathEscape(string(kind)) + "/" + string(action)
	var out wire.Authority
	var err error
	switch {
	case (action == actionTaint || action == actionRevoke) && id == "":
		return Authority{}, fmt.Errorf("admin: authority ID is required: %w", registry.ErrInvalid)
	case id != "":
		err = c.doJSON(ctx, http.MethodPost, path, wire.AuthorityID{AuthorityID: id}, &out)
	default:
		err = c.do(ctx, http.MethodPost, path, nil, nil, &out)
	}
	if err != nil {
		return Authority{}, err
	}
	a, err := authorityFromJSON(out)
	if err != nil {
		return Authority{}, fmt.Errorf("admin: malformed authority in answer: %w", err)
	}
	return a, nil
}
