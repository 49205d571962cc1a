package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Relationship is a federation relationship as the admin API shows it:
// one kept in the datastore, or one of the server's configuration.
type Relationship struct {
	registry.FederationRelationship
	// Configured says that the relationship comes from the server's
	// configuration: the API cannot change or delete it, and a stored
	// relationship with its trust domain is ignored. Its timestamps and
	// bundle are zero.
	Configured bool
}

// A FederationManager keeps the federation relationships of the trust
// domain for the admin API, as SPIRE's trustdomain API does: it checks a
// relationship as the server checks those of its configuration, stores it
// where every server sharing the datastore polls it, and has the answering
// server poll it at once.
//
// Errors wrapping registry.ErrNotFound, registry.ErrInvalid,
// registry.ErrAlreadyExists, registry.ErrConflict or
// [ErrFailedPrecondition] (a relationship of the configuration, which the
// API cannot change) are reported to the caller with their message; any
// other error is logged and answered as an internal error.
type FederationManager interface {
	// Relationships returns every relationship, ordered by trust domain
	// name: those of the configuration and those stored.
	Relationships(ctx context.Context) ([]Relationship, error)
	// CreateRelationship stores a new relationship and returns it as
	// stored.
	CreateRelationship(ctx context.Context, r registry.FederationRelationship) (Relationship, error)
	// UpdateRelationship replaces the stored relationship with
	// r.TrustDomain; an empty r.TrustDomainBundle keeps the stored one.
	UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (Relationship, error)
	// DeleteRelationship deletes the stored relationship with td. The
	// bundle of td stays: `bundle delete` ends the federation.
	DeleteRelationship(ctx context.Context, td spiffeid.TrustDomain) error
}

// A FederationRefresher is a [FederationManager] that can fetch a
// relationship's bundle at once, as SPIRE's `federation refresh` does,
// beside its regular polls. RefreshRelationship fetches the bundle of the
// relationship with td (of the configuration or stored), stores it if it
// changed and tells how it went. Errors wrap registry.ErrNotFound when
// there is no such relationship, registry.ErrInvalid when it cannot be
// polled (its reason), and [ErrUnavailable] when the fetch failed (the
// stored bundle stays).
type FederationRefresher interface {
	RefreshRelationship(ctx context.Context, td spiffeid.TrustDomain) (Refreshed, error)
}

// Refreshed is the outcome of a refresh.
type Refreshed struct {
	// TrustDomain is the relationship's trust domain.
	TrustDomain spiffeid.TrustDomain
	// Changed says whether the fetched bundle differed from the stored one,
	// which it then replaced.
	Changed bool
	// SequenceNumber is the fetched bundle's spiffe_sequence, 0 if it has
	// none.
	SequenceNumber uint64
}

func (s *Server) federationRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/federation/relationships/{td}/refresh", s.refreshRelationship)
	m.HandleFunc("GET /v1/federation/relationships", s.listRelationships)
	m.HandleFunc("GET /v1/federation/relationships/{td}", s.getRelationship)
	m.HandleFunc("POST /v1/federation/relationships", s.createRelationship)
	m.HandleFunc("PUT /v1/federation/relationships/{td}", s.updateRelationship)
	m.HandleFunc("DELETE /v1/federation/relationships/{td}", s.deleteRelationship)
}

// federation returns the manager, or answers that there is none.
func (s *Server) federation(w http.ResponseWriter) FederationManager {
	if s.cfg.Federation == nil {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server keeps no federation relationships in its datastore")
	}
	return s.cfg.Federation
}

func (s *Server) listRelationships(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	rels, err := m.Relationships(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]wire.Relationship, 0, len(rels))
	for _, rel := range rels {
		out = append(out, wire.RelationshipToJSON(rel.FederationRelationship, rel.Configured))
	}
	writeJSON(w, http.StatusOK, map[string]any{"relationships": out})
}

func (s *Server) getRelationship(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	td, err := pathTrustDomain(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rels, err := m.Relationships(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, rel := range rels {
		if rel.TrustDomain == td {
			writeJSON(w, http.StatusOK, wire.RelationshipToJSON(rel.FederationRelationship, rel.Configured))
			return
		}
	}
	s.fail(w, r, registry.NotFoundf("federation relationship with %q", td))
}

// readRelationship reads the relationship of a create or update.
func (s *Server) readRelationship(w http.ResponseWriter, r *http.Request) (registry.FederationRelationship, error) {
	var j wire.Relationship
	if err := readJSON(w, r, &j); err != nil {
		return registry.FederationRelationship{}, err
	}
	rel, configured, err := wire.RelationshipFromJSON(j)
	if err != nil {
		return registry.FederationRelationship{}, invalid("federation relationship: %v", err)
	}
	if configured || rel.CreatedAt != (time.Time{}) || rel.UpdatedAt != (time.Time{}) {
		return registry.FederationRelationship{}, invalid("federation relationship: configured, created_at and updated_at are set by the server")
	}
	if rel.TrustDomain == s.cfg.TrustDomain {
		return registry.FederationRelationship{}, invalid("%q is this server's own trust domain: a trust domain's own bundle can never be overwritten through federation", rel.TrustDomain)
	}
	return rel, nil
}

func (s *Server) createRelationship(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	rel, err := s.readRelationship(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	got, err := m.CreateRelationship(r.Context(), rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federation relationship created", "trust_domain", got.TrustDomain.Name(), "url", got.BundleEndpointURL,
		"profile", got.BundleEndpointProfile)
	writeJSON(w, http.StatusCreated, wire.RelationshipToJSON(got.FederationRelationship, got.Configured))
}

func (s *Server) updateRelationship(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	td, err := pathTrustDomain(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rel, err := s.readRelationship(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rel.TrustDomain != td {
		s.fail(w, r, invalid("the relationship's trust domain %q is not the path's %q", rel.TrustDomain, td))
		return
	}
	got, err := m.UpdateRelationship(r.Context(), rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federation relationship updated", "trust_domain", got.TrustDomain.Name(), "url", got.BundleEndpointURL,
		"profile", got.BundleEndpointProfile)
	writeJSON(w, http.StatusOK, wire.RelationshipToJSON(got.FederationRelationship, got.Configured))
}

func (s *Server) deleteRelationship(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	td, err := pathTrustDomain(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := m.DeleteRelationship(r.Context(), td); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federation relationship deleted", "trust_domain", td.Name())
	writeJSON(w, http.StatusOK, map[string]string{"trust_domain": td.Name()})
}

func (s *Server) refreshRelationship(w http.ResponseWriter, r *http.Request) {
	m := s.federation(w)
	if m == nil {
		return
	}
	td, err := pathTrustDomain(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rf, ok := m.(FederationRefresher)
	if !ok {
		writeError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server cannot refresh federated bundles on demand")
		return
	}
	got, err := rf.RefreshRelationship(r.Context(), td)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federated bundle refreshed", "trust_domain", td.Name(), "changed", got.Changed, "sequence", got.SequenceNumber)
	writeJSON(w, http.StatusOK, wire.Refreshed{TrustDomain: td.Name(), Changed: got.Changed, SequenceNumber: got.SequenceNumber})
}

func relationshipPath(td spiffeid.TrustDomain) string {
	return "/v1/federation/relationships/" + url.PathEscape(td.Name())
}

func decodeRelationship(j wire.Relationship) (Relationship, error) {
	r, configured, err := wire.RelationshipFromJSON(j)
	if err != nil {
		return Relationship{}, fmt.Errorf("admin: malformed federation relationship in answer: %w", err)
	}
	return Relationship{FederationRelationship: r, Configured: configured}, nil
}

// FederationRelationships returns every federation relationship, of the
// server's configuration and of the datastore, ordered by trust domain
// name.
func (c *Client) FederationRelationships(ctx context.Context) ([]Relationship, error) {
	var out struct {
		Relationships []wire.Relationship `json:"relationships"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/federation/relationships", nil, nil, &out); err != nil {
		return nil, err
	}
	rels := make([]Relationship, 0, len(out.Relationships))
	for _, j := range out.Relationships {
		r, err := decodeRelationship(j)
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
	}
	return rels, nil
}

// FederationRelationship returns the federation relationship with td.
func (c *Client) FederationRelationship(ctx context.Context, td spiffeid.TrustDomain) (Relationship, error) {
	if td.IsZero() {
		return Relationship{}, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var out wire.Relationship
	if err := c.do(ctx, http.MethodGet, relationshipPath(td), nil, nil, &out); err != nil {
		return Relationship{}, err
	}
	return decodeRelationship(out)
}

// CreateFederationRelationship stores a new federation relationship in the
// datastore; every server sharing it polls the bundle endpoint from then
// on. Errors wrap registry.ErrAlreadyExists when there is one with
// r.TrustDomain, [ErrFailedPrecondition] when the server's configuration
// has one, registry.ErrInvalid for a relationship the server cannot poll.
func (c *Client) CreateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (Relationship, error) {
	var out wire.Relationship
	if err := c.doJSON(ctx, http.MethodPost, "/v1/federation/relationships", wire.RelationshipToJSON(stripTimes(r), false), &out); err != nil {
		return Relationship{}, err
	}
	return decodeRelationship(out)
}

// UpdateFederationRelationship replaces the stored federation relationship
// with r.TrustDomain; an empty r.TrustDomainBundle keeps the stored one.
func (c *Client) UpdateFederationRelationship(ctx context.Context, r registry.FederationRelationship) (Relationship, error) {
	if r.TrustDomain.IsZero() {
		return Relationship{}, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var out wire.Relationship
	if err := c.doJSON(ctx, http.MethodPut, relationshipPath(r.TrustDomain), wire.RelationshipToJSON(stripTimes(r), false), &out); err != nil {
		return Relationship{}, err
	}
	return decodeRelationship(out)
}

// DeleteFederationRelationship deletes the stored federation relationship
// with td; its bundle stays until `bundle delete`.
func (c *Client) DeleteFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	if td.IsZero() {
		return fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	return c.do(ctx, http.MethodDelete, relationshipPath(td), nil, nil, nil)
}

// RefreshFederationRelationship has the server fetch the bundle of the
// federation relationship with td now, beside its regular polls, as
// SPIRE's `federation refresh`. Errors wrap registry.ErrNotFound when
// there is no such relationship, and [ErrUnavailable] when the fetch
// failed (the message says why; the stored bundle stays).
func (c *Client) RefreshFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) (Refreshed, error) {
	if td.IsZero() {
		return Refreshed{}, fmt.Errorf("admin: trust domain is required: %w", registry.ErrInvalid)
	}
	var out wire.Refreshed
	if err := c.do(ctx, http.MethodPost, relationshipPath(td)+"/refresh", nil, nil, &out); err != nil {
		return Refreshed{}, err
	}
	got, err := spiffeid.TrustDomainFromString(out.TrustDomain)
	if err != nil || got != td {
		return Refreshed{}, fmt.Errorf("admin: malformed refresh answer: trust domain %q", out.TrustDomain)
	}
	return Refreshed{TrustDomain: got, Changed: out.Changed, SequenceNumber: out.SequenceNumber}, nil
}

// stripTimes clears what the server sets.
func stripTimes(r registry.FederationRelationship) registry.FederationRelationship {
	r.CreatedAt, r.UpdatedAt = time.Time{}, time.Time{}
	return r
}
