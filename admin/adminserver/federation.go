package adminserver

import (
	"context"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A FederationManager keeps the federation relationships of the trust
// domain for the admin API, as SPIRE's trustdomain API does: it checks a
// relationship as the server checks those of its configuration, stores it
// where every server sharing the datastore polls it, and has the answering
// server poll it at once.
//
// Errors wrapping registry.ErrNotFound, registry.ErrInvalid,
// registry.ErrAlreadyExists, registry.ErrConflict or
// [admin.ErrFailedPrecondition] (a relationship of the configuration, which the
// API cannot change) are reported to the caller with their message; any
// other error is logged and answered as an internal error.
type FederationManager interface {
	// Relationships returns every relationship, ordered by trust domain
	// name: those of the configuration and those stored.
	Relationships(ctx context.Context) ([]admin.Relationship, error)
	// CreateRelationship stores a new relationship and returns it as
	// stored.
	CreateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error)
	// UpdateRelationship replaces the stored relationship with
	// r.TrustDomain; an empty r.TrustDomainBundle keeps the stored one.
	UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error)
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
// polled (its reason), and [admin.ErrUnavailable] when the fetch failed (the
// stored bundle stays).
type FederationRefresher interface {
	RefreshRelationship(ctx context.Context, td spiffeid.TrustDomain) (admin.Refreshed, error)
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
		wire.WriteError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server keeps no federation relationships in its datastore")
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
	wire.WriteJSON(w, http.StatusOK, map[string]any{"relationships": out})
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
			wire.WriteJSON(w, http.StatusOK, wire.RelationshipToJSON(rel.FederationRelationship, rel.Configured))
			return
		}
	}
	s.fail(w, r, registry.NotFoundf("federation relationship with %q", td))
}

// readRelationship reads the relationship of a create or update.
func (s *Server) readRelationship(w http.ResponseWriter, r *http.Request) (registry.FederationRelationship, error) {
	var j wire.Relationship
	if err := wire.ReadJSON(w, r, &j, MaxRequestBody); err != nil {
		return registry.FederationRelationship{}, err
	}
	rel, configured, err := wire.RelationshipFromJSON(j)
	if err != nil {
		return registry.FederationRelationship{}, wire.Invalid("federation relationship: %v", err)
	}
	if configured || rel.CreatedAt != (time.Time{}) || rel.UpdatedAt != (time.Time{}) {
		return registry.FederationRelationship{}, wire.Invalid("federation relationship: configured, created_at and updated_at are set by the server")
	}
	if rel.TrustDomain == s.cfg.TrustDomain {
		return registry.FederationRelationship{}, wire.Invalid("%q is this server's own trust domain: a trust domain's own bundle can never be overwritten through federation", rel.TrustDomain)
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
	wire.WriteJSON(w, http.StatusCreated, wire.RelationshipToJSON(got.FederationRelationship, got.Configured))
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
		s.fail(w, r, wire.Invalid("the relationship's trust domain %q is not the path's %q", rel.TrustDomain, td))
		return
	}
	got, err := m.UpdateRelationship(r.Context(), rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federation relationship updated", "trust_domain", got.TrustDomain.Name(), "url", got.BundleEndpointURL,
		"profile", got.BundleEndpointProfile)
	wire.WriteJSON(w, http.StatusOK, wire.RelationshipToJSON(got.FederationRelationship, got.Configured))
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
	wire.WriteJSON(w, http.StatusOK, map[string]string{"trust_domain": td.Name()})
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
		wire.WriteError(w, http.StatusNotFound, wire.CodeNotFound, "admin: this server cannot refresh federated bundles on demand")
		return
	}
	got, err := rf.RefreshRelationship(r.Context(), td)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("admin: federated bundle refreshed", "trust_domain", td.Name(), "changed", got.Changed, "sequence", got.SequenceNumber)
	wire.WriteJSON(w, http.StatusOK, wire.Refreshed{TrustDomain: td.Name(), Changed: got.Changed, SequenceNumber: got.SequenceNumber})
}
