package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// federationAdmin is the admin API's admin.FederationManager over the
// server's relationships: those of Config.Federation, read-only, and those
// of Stores.Federation.
type federationAdmin struct{ s *Server }

var _ admin.FederationManager = federationAdmin{}

// configured reports whether Config.Federation has a relationship with td.
func (f federationAdmin) configured(td spiffeid.TrustDomain) error {
	if f.s.fed.isStatic[td] {
		return fmt.Errorf("%w: the federation relationship with %q is in the server's configuration; change it there", admin.ErrFailedPrecondition, td.Name())
	}
	return nil
}

// Relationships implements admin.FederationManager.
func (f federationAdmin) Relationships(ctx context.Context) ([]admin.Relationship, error) {
	var out []admin.Relationship
	for _, w := range f.s.fed.static {
		r := registry.FederationRelationship{TrustDomain: w.rel.TrustDomain, BundleEndpointURL: w.rel.URL,
			BundleEndpointProfile: string(w.rel.Profile), EndpointSPIFFEID: w.rel.EndpointSPIFFEID}
		out = append(out, admin.Relationship{FederationRelationship: r, Configured: true})
	}
	stored, err := f.s.stores.Federation.ListFederationRelationships(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		if !f.s.fed.isStatic[r.TrustDomain] { // shadowed by the configuration's
			out = append(out, admin.Relationship{FederationRelationship: r})
		}
	}
	slices.SortFunc(out, func(a, b admin.Relationship) int { return a.TrustDomain.Compare(b.TrustDomain) })
	return out, nil
}

// check validates r as New validates the configuration's relationships.
func (f federationAdmin) check(ctx context.Context, r registry.FederationRelationship) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if _, err := f.s.checkStored(ctx, r); err != nil {
		if se, ok := errors.AsType[storeError](err); ok {
			return se.err
		}
		return invalidRelationship{fmt.Sprintf("federation relationship with %q: %v", r.TrustDomain.Name(), err)}
	}
	return nil
}

// invalidRelationship is a relationship the server cannot poll; it wraps
// registry.ErrInvalid, for the admin API to answer 400.
type invalidRelationship struct{ msg string }

func (e invalidRelationship) Error() string        { return e.msg }
func (e invalidRelationship) Is(target error) bool { return target == registry.ErrInvalid }

// CreateRelationship implements admin.FederationManager.
func (f federationAdmin) CreateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.configured(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	if err := f.check(ctx, r); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.s.stores.Federation.CreateFederationRelationship(ctx, r)
	if err != nil {
		return admin.Relationship{}, err
	}
	f.s.fed.poke()
	return admin.Relationship{FederationRelationship: got}, nil
}

// UpdateRelationship implements admin.FederationManager.
func (f federationAdmin) UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.configured(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	if len(r.TrustDomainBundle) == 0 {
		cur, err := f.s.stores.Federation.GetFederationRelationship(ctx, r.TrustDomain)
		if err != nil {
			return admin.Relationship{}, err
		}
		if r.BundleEndpointProfile == registry.ProfileHTTPSSPIFFE && r.EndpointSPIFFEID.MemberOf(r.TrustDomain) {
			r.TrustDomainBundle = cur.TrustDomainBundle // still the bootstrap of a self-serving endpoint
		}
	}
	if err := f.check(ctx, r); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.s.stores.Federation.UpdateFederationRelationship(ctx, r)
	if err != nil {
		return admin.Relationship{}, err
	}
	f.s.fed.poke()
	return admin.Relationship{FederationRelationship: got}, nil
}

// DeleteRelationship implements admin.FederationManager. A stored
// relationship shadowed by one of the configuration can be deleted.
func (f federationAdmin) DeleteRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	err := f.s.stores.Federation.DeleteFederationRelationship(ctx, td)
	if errors.Is(err, registry.ErrNotFound) {
		if cerr := f.configured(td); cerr != nil {
			return cerr
		}
	}
	if err != nil {
		return err
	}
	f.s.fed.poke()
	return nil
}
