package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

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

func invalid(format string, args ...any) error {
	return fmt.Errorf("admin: "+format+": %w", append(args, registry.ErrInvalid)...)
}

// fail maps an error to its status and code, in one place. Details of
// internal errors go to the log, not to the caller.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeInvalid,
			fmt.Sprintf("admin: request body is larger than %d bytes", tooLarge.Limit))
	case errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, err.Error())
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, wire.CodeNotFound, err.Error())
	case errors.Is(err, registry.ErrConflict):
		writeError(w, http.StatusConflict, wire.CodeConflict, err.Error())
	case errors.Is(err, registry.ErrAlreadyExists):
		writeError(w, http.StatusConflict, wire.CodeAlreadyExists, err.Error())
	case errors.Is(err, ErrFailedPrecondition):
		writeError(w, http.StatusConflict, wire.CodeFailedPrecondition, err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, err.Error())
	case s.timedOut(r, err):
		writeError(w, http.StatusServiceUnavailable, wire.CodeUnavailable, s.timeoutMessage())
	default:
		s.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, wire.CodeInternal, "admin: internal error")
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}

// limitBody returns the body of r, limited to n bytes: reading past them
// fails with an *http.MaxBytesError. A body whose declared length is over n
// is refused so at once, before any of it is read.
func limitBody(w http.ResponseWriter, r *http.Request, n int64) (io.Reader, error) {
	if r.ContentLength > n {
		return nil, &http.MaxBytesError{Limit: n}
	}
	return http.MaxBytesReader(w, r.Body, n), nil
}

// readJSON decodes exactly one JSON value of at most MaxRequestBody bytes,
// refusing unknown fields.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := limitBody(w, r, MaxRequestBody)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return invalid("malformed request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("request body holds more than one JSON value")
	}
	return nil
}

// checkEntry enforces what the registry cannot know: the entry's IDs
// belong to this server's trust domain, the only one it can sign for, and
// it federates with other trust domains only. It also refuses what no
// write may hold (a reserved SPIFFE ID, also refused by the stores of
// package registry) and selectors the built-in attestors can never
// produce ([checkSelector]), and an expiry that has come.
func (s *Server) checkEntry(e registry.Entry) error {
	if !e.SPIFFEID.IsZero() && !e.SPIFFEID.MemberOf(s.cfg.TrustDomain) {
		return invalid("entry SPIFFE ID %q is not in trust domain %q", e.SPIFFEID, s.cfg.TrustDomain)
	}
	if registry.Reserved(e.SPIFFEID) {
		return invalid("entry SPIFFE ID %q %s", e.SPIFFEID, s.reservedNote())
	}
	if !e.ParentID.IsZero() && !e.ParentID.MemberOf(s.cfg.TrustDomain) {
		return invalid("entry parent ID %q is not in trust domain %q", e.ParentID, s.cfg.TrustDomain)
	}
	for _, sel := range e.Selectors {
		if err := checkSelector(sel); err != nil {
			return invalid("entry selector %q can never match: %v", sel.String(), err)
		}
	}
	// A trust domain without a bundle yet is accepted: a federation
	// relationship may fetch it later, and the workload receives it then.
	if slices.Contains(e.FederatesWith, s.cfg.TrustDomain) {
		return invalid("entry federates with %q, this server's own trust domain", s.cfg.TrustDomain)
	}
	// An entry that has expired is served to no one and pruned: writing
	// one is a mistake.
	if e.Expired(s.cfg.Now()) {
		return invalid("entry expiry %s (%d seconds since the epoch) has passed; give a time to come, or none",
			e.ExpiresAt.UTC().Format(time.RFC3339), e.ExpiresAt.Unix())
	}
	return nil
}

func (s *Server) reservedNote() string {
	return fmt.Sprintf("is reserved for the server and its agents (spiffe://%s%s/...)", s.cfg.TrustDomain.Name(), registry.ReservedPath)
}

// checkAlias checks the node alias of a join token request.
func (s *Server) checkAlias(alias spiffeid.ID) error {
	switch {
	case !alias.MemberOf(s.cfg.TrustDomain):
		return fmt.Errorf("token SPIFFE ID %q is not in trust domain %q", alias, s.cfg.TrustDomain)
	case alias.Path() == "":
		return fmt.Errorf("token SPIFFE ID %q has no path", alias)
	case registry.Reserved(alias):
		return fmt.Errorf("token SPIFFE ID %q %s; the agent's own ID is derived from the token, and the SPIFFE ID becomes a node alias of it", alias, s.reservedNote())
	}
	return nil
}

func (s *Server) decodeEntry(w http.ResponseWriter, r *http.Request) (registry.Entry, error) {
	var j wire.Entry
	if err := readJSON(w, r, &j); err != nil {
		return registry.Entry{}, err
	}
	e, err := wire.EntryFromJSON(j)
	if err != nil {
		return registry.Entry{}, invalid("%v", err)
	}
	if err := s.checkEntry(e); err != nil {
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
	writeJSON(w, http.StatusCreated, wire.EntryToJSON(e))
}

func (s *Server) updateEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.decodeEntry(w, r)
	if err == nil && e.ID != "" && e.ID != r.PathValue("id") {
		err = invalid("entry ID %q in the body differs from %q in the path", e.ID, r.PathValue("id"))
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
	writeJSON(w, http.StatusOK, wire.EntryToJSON(e))
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	e, err := s.cfg.Entries.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.EntryToJSON(e))
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
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
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
	writeJSON(w, http.StatusOK, wire.Count{Count: n})
}

func (s *Server) deleteEntry(w http.ResponseWriter, r *http.Request) {
	var revision int64
	if v := r.URL.Query().Get("revision"); v != "" {
		var err error
		if revision, err = strconv.ParseInt(v, 10, 64); err != nil || revision < 0 {
			s.fail(w, r, invalid("revision %q is not a non-negative integer", v))
			return
		}
	}
	e, err := s.cfg.Entries.Delete(r.Context(), r.PathValue("id"), revision)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: entry deleted", "entry_id", e.ID)
	writeJSON(w, http.StatusOK, wire.EntryToJSON(e))
}

func (s *Server) generateToken(w http.ResponseWriter, r *http.Request) {
	var req wire.TokenRequest
	if err := readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	ttl, err := wire.ParseDuration("ttl", req.TTL)
	if err != nil {
		s.fail(w, r, invalid("%v", err))
		return
	}
	if ttl <= 0 {
		s.fail(w, r, invalid("token TTL must be positive"))
		return
	}
	alias, err := wire.OptionalID("spiffe_id", req.SPIFFEID)
	if err == nil && !alias.IsZero() {
		err = s.checkAlias(alias)
	}
	if err != nil {
		s.fail(w, r, invalid("%v", err))
		return
	}
	token, expiresAt, err := s.cfg.Tokens.GenerateToken(r.Context(), ttl, alias)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The token itself is a secret: it goes to the caller only.
	s.log.Info("admin: join token generated", "expires_at", expiresAt, "alias", alias.String())
	writeJSON(w, http.StatusCreated, wire.Token{Token: token, ExpiresAt: expiresAt})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := wire.Status{TrustDomain: s.cfg.TrustDomain.Name(), Healthy: true}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(r.Context()); err != nil {
			st.Healthy, st.Reason = false, err.Error()
			s.log.Warn("admin: status: unhealthy", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) ownBundle(w http.ResponseWriter, r *http.Request) {
	format := BundleFormat(r.URL.Query().Get("format"))
	if format == "" {
		format = FormatPEM
	}
	if format != FormatPEM && format != FormatSPIFFE {
		s.fail(w, r, invalid("unknown bundle format %q (want pem or spiffe)", format))
		return
	}
	b := s.cfg.Bundle()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "", "admin: the trust domain has no bundle yet")
		return
	}
	var body []byte
	var err error
	contentType := "application/json"
	if format == FormatSPIFFE {
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
		return spiffeid.TrustDomain{}, invalid("trust domain: %v", err)
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
		s.fail(w, r, invalid("%q is this server's own trust domain: a trust domain's own bundle can never be overwritten through federation", td))
		return
	}
	body, err := limitBody(w, r, registry.MaxBundleDocument)
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
		s.fail(w, r, invalid("bundle of %q: %v", td, err))
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
	writeJSON(w, http.StatusOK, j)
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
	writeJSON(w, http.StatusOK, map[string]any{"bundles": out})
}

func (s *Server) deleteBundle(w http.ResponseWriter, r *http.Request) {
	td, err := pathTrustDomain(r)
	mode := BundleDeleteMode(r.URL.Query().Get("mode"))
	if mode == "" {
		mode = DeleteRestrict
	}
	if err == nil && mode != DeleteRestrict && mode != DeleteEntries && mode != DeleteDissociate {
		err = invalid("unknown bundle delete mode %q (want restrict, delete or dissociate)", mode)
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
	writeJSON(w, http.StatusOK, wire.BundleDeleted{TrustDomain: td.Name(), Mode: string(mode), Entries: n})
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
func (s *Server) releaseBundle(ctx context.Context, td spiffeid.TrustDomain, mode BundleDeleteMode) (int, error) {
	f := registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{TrustDomains: []spiffeid.TrustDomain{td}, Match: registry.MatchAny}}
	var entries []registry.Entry
	if err := s.walkEntries(ctx, f, func(e registry.Entry) { entries = append(entries, e) }); err != nil {
		return 0, err
	}
	switch {
	case len(entries) == 0:
		return 0, nil
	case mode == DeleteRestrict:
		return 0, fmt.Errorf("%w: %d %s federate with %q (such as %s); delete them with the bundle (mode delete), "+
			"or stop them federating with it (mode dissociate)", ErrFailedPrecondition, len(entries),
			pluralEntries(len(entries)), td.Name(), entries[0].ID)
	}
	n := 0
	for _, e := range entries {
		switch mode {
		case DeleteEntries:
			if _, err := s.cfg.Entries.Delete(ctx, e.ID, 0); err != nil && !errors.Is(err, registry.ErrNotFound) {
				return n, fmt.Errorf("deleting entry %s, which federates with %q: %w", e.ID, td.Name(), err)
			}
			s.log.Info("admin: entry deleted with the bundle it federates with", "entry_id", e.ID, "trust_domain", td.Name())
		case DeleteDissociate:
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
		return spiffeid.ID{}, invalid("the agent's SPIFFE ID (query parameter id) is required")
	}
	id, err := spiffeid.FromString(v)
	if err != nil {
		return spiffeid.ID{}, invalid("agent ID: %v", err)
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
	writeJSON(w, http.StatusOK, map[string]any{"agents": out})
}

func (s *Server) countAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.cfg.Agents.ListAgents(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Count{Count: len(agents)})
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
	writeJSON(w, http.StatusOK, wire.AgentToJSON(a))
}

func (s *Server) ban(ctx context.Context, id spiffeid.ID) (registry.Agent, error) {
	a, err := s.cfg.Agents.GetAgent(ctx, id)
	if err != nil {
		return registry.Agent{}, err
	}
	a.Banned = true
	return s.cfg.Agents.PutAgent(ctx, a)
}

// BundleDeleteMode says what deleting a federated bundle does to the
// entries that federate with its trust domain, as SPIRE's bundle delete
// -mode does.
type BundleDeleteMode string

// The modes of [Client.DeleteFederatedBundle].
const (
	// DeleteRestrict refuses to delete the bundle while any entry
	// federates with it (an error wrapping [ErrFailedPrecondition]). It is
	// the default.
	DeleteRestrict BundleDeleteMode = "restrict"
	// DeleteEntries deletes those entries with the bundle.
	DeleteEntries BundleDeleteMode = "delete"
	// DeleteDissociate removes the trust domain from those entries'
	// FederatesWith, and keeps them.
	DeleteDissociate BundleDeleteMode = "dissociate"
)

// BundleFormat names an encoding of the trust domain's own bundle.
type BundleFormat string

// The formats of [Client.Bundle].
const (
	// FormatPEM is the X.509 authorities as PEM CERTIFICATE blocks.
	FormatPEM BundleFormat = "pem"
	// FormatSPIFFE is the SPIFFE bundle document (a JWK Set) with every
	// kind of authority.
	FormatSPIFFE BundleFormat = "spiffe"
)
