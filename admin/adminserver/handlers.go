package adminserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver/internal/admission"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// listPageSize is the page size used to walk the entry store for a list.
const listPageSize = 500

func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/entries", s.createEntry)
	m.HandleFunc("POST /v1/entries/batch", s.createEntries)
	m.HandleFunc("GET /v1/entries", s.listEntries)
	m.HandleFunc("GET /v1/entries/count", s.countEntries)
	m.HandleFunc("GET /v1/entries/{id}", s.getEntry)
	m.HandleFunc("PUT /v1/entries/{id}", s.updateEntry)
	m.HandleFunc("DELETE /v1/entries/{id}", s.deleteEntry)
	m.HandleFunc("POST /v1/tokens", s.generateToken)
	m.HandleFunc("GET /v1/status", s.status)
	m.HandleFunc("GET /v1/bundle", s.ownBundle)
	m.HandleFunc("GET /v1/federation/bundles", s.listBundles)
	m.HandleFunc("GET /v1/federation/bundles/{td}", s.getBundle)
	m.HandleFunc("PUT /v1/federation/bundles/{td}", s.setBundle)
	m.HandleFunc("DELETE /v1/federation/bundles/{td}", s.deleteBundle)
	// Agent IDs contain slashes, so they travel as the query parameter id.
	m.HandleFunc("GET /v1/agents", s.listAgents)
	m.HandleFunc("GET /v1/agents/count", s.countAgents)
	m.HandleFunc("DELETE /v1/agents", s.evictAgent)
	m.HandleFunc("POST /v1/agents/ban", s.banAgent)
	s.authorityRoutes(m)
	s.mintRoutes(m)
	s.federationRoutes(m)
	return m
}

// fail maps an error to its status and code, in one place. Details of
// internal errors go to the log, not to the caller.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		wire.WriteError(w, http.StatusRequestEntityTooLarge, wire.CodeInvalid,
			fmt.Sprintf("admin: request body is larger than %d bytes", tooLarge.Limit))
	case errors.Is(err, registry.ErrInvalid):
		wire.WriteError(w, http.StatusBadRequest, wire.CodeInvalid, err.Error())
	case errors.Is(err, registry.ErrNotFound):
		wire.WriteError(w, http.StatusNotFound, wire.CodeNotFound, err.Error())
	case errors.Is(err, registry.ErrConflict):
		wire.WriteError(w, http.StatusConflict, wire.CodeConflict, err.Error())
	case errors.Is(err, registry.ErrAlreadyExists):
		wire.WriteError(w, http.StatusConflict, wire.CodeAlreadyExists, err.Error())
	case errors.Is(err, admin.ErrFailedPrecondition):
		wire.WriteError(w, http.StatusConflict, wire.CodeFailedPrecondition, err.Error())
	case errors.Is(err, admin.ErrUnavailable):
		wire.WriteError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error())
	case s.timedOut(r, err):
		wire.WriteError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, s.timeoutMessage())
	default:
		s.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		wire.WriteError(w, http.StatusInternalServerError, wire.CodeInternal, "admin: internal error")
	}
}

func (s *Server) decodeEntry(w http.ResponseWriter, r *http.Request) (registry.Entry, error) {
	var j wire.Entry
	if err := wire.ReadJSON(w, r, &j, MaxRequestBody); err != nil {
		return registry.Entry{}, err
	}
	e, err := wire.EntryFromJSON(j)
	if err != nil {
		return registry.Entry{}, wire.Invalid("%v", err)
	}
	if err := admission.CheckEntry(e, s.cfg.TrustDomain, s.cfg.Now()); err != nil {
		return registry.Entry{}, err
	}
	return e, nil
}

func (s *Server) createEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.decodeEntry(w, r)
	if err == nil {
		e, err = s.cfg.Entries.Create(r.Context(), e)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: entry created", "entry_id", e.ID, "spiffe_id", e.SPIFFEID.String())
	wire.WriteJSON(w, http.StatusCreated, wire.EntryToJSON(e))
}

func (s *Server) updateEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.decodeEntry(w, r)
	if err == nil && e.ID != "" && e.ID != r.PathValue("id") {
		err = wire.Invalid("entry ID %q in the body differs from %q in the path", e.ID, r.PathValue("id"))
	}
	if err == nil {
		e.ID = r.PathValue("id")
		e, err = s.cfg.Entries.Update(r.Context(), e)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: entry updated", "entry_id", e.ID, "revision", e.Revision)
	wire.WriteJSON(w, http.StatusOK, wire.EntryToJSON(e))
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.cfg.Entries.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, wire.EntryToJSON(e))
}

// walkEntries calls fn with every entry that matches f, a page at a time.
func (s *Server) walkEntries(ctx context.Context, f registry.Filter, fn func(registry.Entry)) error {
	page := registry.Page{Size: listPageSize}
	for {
		entries, next, err := s.cfg.Entries.List(ctx, f, page)
		if err != nil {
			return err
		}
		for _, e := range entries {
			fn(e)
		}
		if next == "" {
			return nil
		}
		page.Token = next
	}
}

func (s *Server) listEntries(w http.ResponseWriter, r *http.Request) {
	f, err := wire.DecodeFilter(r.URL.Query())
	out := []wire.Entry{}
	if err == nil {
		err = s.walkEntries(r.Context(), f, func(e registry.Entry) { out = append(out, wire.EntryToJSON(e)) })
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, map[string]any{"entries": out})
}

func (s *Server) countEntries(w http.ResponseWriter, r *http.Request) {
	f, err := wire.DecodeFilter(r.URL.Query())
	n := 0
	if err == nil {
		err = s.walkEntries(r.Context(), f, func(registry.Entry) { n++ })
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, wire.Count{Count: n})
}

func (s *Server) deleteEntry(w http.ResponseWriter, r *http.Request) {
	var revision int64
	if v := r.URL.Query().Get("revision"); v != "" {
		var err error
		if revision, err = strconv.ParseInt(v, 10, 64); err != nil || revision < 0 {
			s.fail(w, r, wire.Invalid("revision %q is not a non-negative integer", v))
			return
		}
	}
	e, err := s.cfg.Entries.Delete(r.Context(), r.PathValue("id"), revision)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: entry deleted", "entry_id", e.ID)
	wire.WriteJSON(w, http.StatusOK, wire.EntryToJSON(e))
}

func (s *Server) generateToken(w http.ResponseWriter, r *http.Request) {
	var req wire.TokenRequest
	if err := wire.ReadJSON(w, r, &req, MaxRequestBody); err != nil {
		s.fail(w, r, err)
		return
	}
	ttl, err := wire.ParseDuration("ttl", req.TTL)
	if err != nil {
		s.fail(w, r, wire.Invalid("%v", err))
		return
	}
	if ttl <= 0 {
		s.fail(w, r, wire.Invalid("token TTL must be positive"))
		return
	}
	alias, err := wire.OptionalID("spiffe_id", req.SPIFFEID)
	if err != nil {
		err = wire.Invalid("%v", err)
	} else if !alias.IsZero() {
		err = admission.CheckAlias(alias, s.cfg.TrustDomain)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	token, expiresAt, err := s.cfg.Tokens.GenerateToken(r.Context(), ttl, alias)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The token itself is a secret: it goes to the caller only.
	s.log.Info("admin: join token generated", "expires_at", expiresAt, "alias", alias.String())
	wire.WriteJSON(w, http.StatusCreated, wire.Token{Token: token, ExpiresAt: expiresAt})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := wire.Status{TrustDomain: s.cfg.TrustDomain.Name(), Healthy: true}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(r.Context()); err != nil {
			st.Healthy, st.Reason = false, err.Error()
			s.log.Warn("admin: status: unhealthy", "err", err)
		}
	}
	wire.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) ownBundle(w http.ResponseWriter, r *http.Request) {
	format := admin.BundleFormat(r.URL.Query().Get("format"))
	if format == "" {
		format = admin.FormatPEM
	}
	if format != admin.FormatPEM && format != admin.FormatSPIFFE {
		s.fail(w, r, wire.Invalid("unknown bundle format %q (want pem or spiffe)", format))
		return
	}
	b := s.cfg.Bundle()
	if b == nil {
		wire.WriteError(w, http.StatusServiceUnavailable, "", "admin: the trust domain has no bundle yet")
		return
	}
	var body []byte
	var err error
	contentType := "application/json"
	if format == admin.FormatSPIFFE {
		body, err = b.Marshal()
	} else {
		contentType = "application/x-pem-file"
		body, err = b.X509Bundle().Marshal()
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

func pathTrustDomain(r *http.Request) (spiffeid.TrustDomain, error) {
	td, err := spiffeid.TrustDomainFromString(r.PathValue("td"))
	if err != nil {
		return spiffeid.TrustDomain{}, wire.Invalid("trust domain: %v", err)
	}
	return td, nil
}

func (s *Server) setBundle(w http.ResponseWriter, r *http.Request) {
	td, err := pathTrustDomain(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Bundle rule: federation only ever adds foreign trust domains; the
	// trust domain's own bundle comes from its own CA alone.
	if td == s.cfg.TrustDomain {
		s.fail(w, r, wire.Invalid("%q is this server's own trust domain: a trust domain's own bundle can never be overwritten through federation", td))
		return
	}
	body, err := wire.LimitBody(w, r, registry.MaxBundleDocument)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	doc, err := io.ReadAll(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := spiffebundle.Parse(td, doc); err != nil {
		s.fail(w, r, wire.Invalid("bundle of %q: %v", td, err))
		return
	}
	stored, err := s.cfg.Bundles.PutBundle(r.Context(), registry.FederatedBundle{TrustDomain: td, Document: doc})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federated bundle set", "trust_domain", td.Name())
	s.writeBundle(w, r, stored)
}

func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request, b registry.FederatedBundle) {
	j, err := wire.BundleToJSON(b)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, j)
}

func (s *Server) getBundle(w http.ResponseWriter, r *http.Request) {
	td, err := pathTrustDomain(r)
	var b registry.FederatedBundle
	if err == nil {
		b, err = s.cfg.Bundles.GetBundle(r.Context(), td)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeBundle(w, r, b)
}

func (s *Server) listBundles(w http.ResponseWriter, r *http.Request) {
	bundles, err := s.cfg.Bundles.ListBundles(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]wire.Bundle, 0, len(bundles))
	for _, b := range bundles {
		j, err := wire.BundleToJSON(b)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, j)
	}
	wire.WriteJSON(w, http.StatusOK, map[string]any{"bundles": out})
}

func (s *Server) deleteBundle(w http.ResponseWriter, r *http.Request) {
	td, err := pathTrustDomain(r)
	mode := admin.BundleDeleteMode(r.URL.Query().Get("mode"))
	if mode == "" {
		mode = admin.DeleteRestrict
	}
	if err == nil && mode != admin.DeleteRestrict && mode != admin.DeleteEntries && mode != admin.DeleteDissociate {
		err = wire.Invalid("unknown bundle delete mode %q (want restrict, delete or dissociate)", mode)
	}
	if err == nil {
		// A bundle that is not there is not deleted, whatever federates
		// with its trust domain.
		_, err = s.cfg.Bundles.GetBundle(r.Context(), td)
	}
	var n int
	if err == nil {
		n, err = s.releaseBundle(r.Context(), td, mode)
	}
	if err == nil {
		err = s.cfg.Bundles.DeleteBundle(r.Context(), td)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federated bundle deleted", "trust_domain", td.Name(), "mode", string(mode), "entries", n)
	wire.WriteJSON(w, http.StatusOK, wire.BundleDeleted{TrustDomain: td.Name(), Mode: string(mode), Entries: n})
}

// maxDissociateTries bounds how often the dissociation of one entry is
// tried again when the entry changed between its reading and its writing.
const maxDissociateTries = 5

// releaseBundle deals, as mode says, with the entries that federate with
// td before its bundle is deleted, and returns how many it deleted or
// changed. Restrict refuses while any federates with td, with an error
// wrapping ErrFailedPrecondition; Delete deletes them; Dissociate removes
// td from their FederatesWith. An entry written meanwhile may escape it:
// the check and the deletion are not one transaction.
func (s *Server) releaseBundle(ctx context.Context, td spiffeid.TrustDomain, mode admin.BundleDeleteMode) (int, error) {
	f := registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{TrustDomains: []spiffeid.TrustDomain{td}, Match: registry.MatchAny}}
	var entries []registry.Entry
	if err := s.walkEntries(ctx, f, func(e registry.Entry) { entries = append(entries, e) }); err != nil {
		return 0, err
	}
	switch {
	case len(entries) == 0:
		return 0, nil
	case mode == admin.DeleteRestrict:
		return 0, fmt.Errorf("%w: %d %s federate with %q (such as %s); delete them with the bundle (mode delete), "+
			"or stop them federating with it (mode dissociate)", admin.ErrFailedPrecondition, len(entries),
			pluralEntries(len(entries)), td.Name(), entries[0].ID)
	}
	n := 0
	for _, e := range entries {
		switch mode {
		case admin.DeleteEntries:
			if _, err := s.cfg.Entries.Delete(ctx, e.ID, 0); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return n, fmt.Errorf("deleting entry %s, which federates with %q: %w", e.ID, td.Name(), err)
			}
			s.log.Info("admin: entry deleted with the bundle it federates with", "entry_id", e.ID, "trust_domain", td.Name())
		case admin.DeleteDissociate:
			if err := s.dissociate(ctx, e, td); err != nil {
				return n, fmt.Errorf("entry %s, which federates with %q: %w", e.ID, td.Name(), err)
			}
			s.log.Info("admin: entry no longer federates with a deleted bundle", "entry_id", e.ID, "trust_domain", td.Name())
		}
		n++
	}
	return n, nil
}

// dissociate removes td from the FederatesWith of e, reading the entry
// again when it changed meanwhile. An entry deleted meanwhile is left.
func (s *Server) dissociate(ctx context.Context, e registry.Entry, td spiffeid.TrustDomain) error {
	for try := 1; ; try++ {
		e.FederatesWith = slices.DeleteFunc(e.FederatesWith, func(x spiffeid.TrustDomain) bool { return x == td })
		_, err := s.cfg.Entries.Update(ctx, e)
		switch {
		case err == nil, errors.Is(err, registry.ErrNotFound):
			return nil
		case !errors.Is(err, registry.ErrConflict) || try == maxDissociateTries:
			return err
		}
		if e, err = s.cfg.Entries.Get(ctx, e.ID); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			return err
		}
	}
}

func pluralEntries(n int) string {
	if n == 1 {
		return "entry"
	}
	return "entries"
}

func queryAgentID(r *http.Request) (spiffeid.ID, error) {
	v := r.URL.Query().Get("id")
	if v == "" {
		return spiffeid.ID{}, wire.Invalid("the agent's SPIFFE ID (query parameter id) is required")
	}
	id, err := spiffeid.FromString(v)
	if err != nil {
		return spiffeid.ID{}, wire.Invalid("agent ID: %v", err)
	}
	return id, nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	var agents []registry.Agent
	var err error
	if r.URL.Query().Has("id") {
		var id spiffeid.ID
		var a registry.Agent
		if id, err = queryAgentID(r); err == nil {
			a, err = s.cfg.Agents.GetAgent(r.Context(), id)
			agents = []registry.Agent{a}
		}
	} else {
		agents, err = s.cfg.Agents.ListAgents(r.Context())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]wire.Agent, 0, len(agents))
	for _, a := range agents {
		out = append(out, wire.AgentToJSON(a))
	}
	wire.WriteJSON(w, http.StatusOK, map[string]any{"agents": out})
}

func (s *Server) countAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.cfg.Agents.ListAgents(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, wire.Count{Count: len(agents)})
}

func (s *Server) evictAgent(w http.ResponseWriter, r *http.Request) {
	id, err := queryAgentID(r)
	if err == nil {
		err = s.cfg.Agents.DeleteAgent(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: agent evicted", "agent_id", id.String())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) banAgent(w http.ResponseWriter, r *http.Request) {
	id, err := queryAgentID(r)
	var a registry.Agent
	if err == nil {
		a, err = s.ban(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: agent banned", "agent_id", id.String())
	wire.WriteJSON(w, http.StatusOK, wire.AgentToJSON(a))
}

func (s *Server) ban(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	a, err := s.cfg.Agents.GetAgent(ctx, id)
	if err != nil {
		return registry.Agent{}, err
	}
	a.Banned = true
	return s.cfg.Agents.PutAgent(ctx, a)
}
