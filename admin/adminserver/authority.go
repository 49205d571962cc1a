package adminserver

import (
	"context"
	"net/http"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// An AuthorityManager operates the CA of the trust domain for the admin
// API, as the localauthority API of SPIRE does. Prepare and activate act on
// the CA of the server that answers; taint and revoke on an authority of
// any server of the trust domain, which every server then honours.
//
// Errors wrapping registry.ErrNotFound (no such authority),
// registry.ErrInvalid or [admin.ErrFailedPrecondition] (the authority's state
// forbids the action, such as tainting the active authority) are reported
// to the caller with their message; any other error is logged and answered
// as an internal error.
type AuthorityManager interface {
	// Authorities describes every authority of every live server of the
	// trust domain: X.509 CAs, then JWT keys, then WIT keys, each kind
	// oldest first.
	Authorities(ctx context.Context) ([]admin.Authority, error)
	// PrepareAuthority makes a new authority of the kind on the answering
	// server's CA and publishes it in the bundle, replacing a prepared one.
	PrepareAuthority(ctx context.Context, kind registry.AuthorityKind) (admin.Authority, error)
	// ActivateAuthority makes the prepared authority of the kind the active
	// one; the active one becomes old. A non-empty id must be the prepared
	// authority's ID, so that an operator activates what they checked.
	ActivateAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error)
	// TaintAuthority taints an old authority, of any server: everything it
	// signed is replaced early.
	TaintAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error)
	// RevokeAuthority takes an authority that is not active, of any
	// server, out of the bundle.
	RevokeAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error)
}

// pastTense returns an action on an authority in the past tense, for the
// log.
func pastTense(action string) string {
	if action == wire.ActionTaint {
		return "tainted"
	}
	return action + "d"
}

func (s *Server) authorityRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /v1/authorities", s.listAuthorities)
	for _, a := range []string{wire.ActionPrepare, wire.ActionActivate, wire.ActionTaint, wire.ActionRevoke} {
		m.HandleFunc("POST /v1/authorities/{kind}/"+a, func(w http.ResponseWriter, r *http.Request) {
			s.authorityAction(w, r, a)
		})
	}
}

// authorities returns the manager, or answers that there is none.
func (s *Server) authorities(w http.ResponseWriter) AuthorityManager {
	if s.cfg.Authorities == nil {
		wire.WriteError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server has no CA to operate")
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
	wire.WriteJSON(w, http.StatusOK, map[string]any{"authorities": out})
}

func (s *Server) authorityAction(w http.ResponseWriter, r *http.Request, action string) {
	m := s.authorities(w)
	if m == nil {
		return
	}
	kind, err := admin.ParseAuthorityKind(r.PathValue("kind"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var id string
	switch action {
	case wire.ActionTaint, wire.ActionRevoke:
		var req wire.AuthorityID
		if err := wire.ReadJSON(w, r, &req, MaxRequestBody); err != nil {
			s.fail(w, r, err)
			return
		}
		if id = req.AuthorityID; id == "" {
			s.fail(w, r, wire.Invalid("the authority ID is required"))
			return
		}
	case wire.ActionActivate:
		// The ID is optional: no body, or one naming the prepared authority.
		if r.ContentLength != 0 {
			var req wire.AuthorityID
			if err := wire.ReadJSON(w, r, &req, MaxRequestBody); err != nil {
				s.fail(w, r, err)
				return
			}
			id = req.AuthorityID
		}
	}
	var a admin.Authority
	switch action {
	case wire.ActionPrepare:
		a, err = m.PrepareAuthority(r.Context(), kind)
	case wire.ActionActivate:
		a, err = m.ActivateAuthority(r.Context(), kind, id)
	case wire.ActionTaint:
		a, err = m.TaintAuthority(r.Context(), kind, id)
	case wire.ActionRevoke:
		a, err = m.RevokeAuthority(r.Context(), kind, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: authority "+pastTense(action), "kind", string(a.Kind), "authority_id", a.ID,
		"server_id", a.ServerID, "state", string(a.State), "pending", a.Pending)
	wire.WriteJSON(w, http.StatusOK, wire.Authority(a))
}
