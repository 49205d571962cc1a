package fedpoll

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// federationAdmin is the admin API's adminserver.FederationManager over the
// server's relationships: those of Config.Static, read-only, and those of
// Config.Store.
type federationAdmin struct{ p *Poller }

// Admin returns the admin API's manager of the relationships, or nil when
// Config.Store is nil.
func (p *Poller) Admin() adminserver.FederationManager {
	if p.store == nil {
		return nil
	}
	return federationAdmin{p}
}

var _ adminserver.FederationManager = federationAdmin{}

// configured reports whether Config.Static has a relationship with td.
func (f federationAdmin) configured(td spiffeid.TrustDomain) error {
	if f.p.isStatic[td] {
		return fmt.Errorf("%w: the federation relationship with %q is in the server's configuration; change it there", admin.ErrFailedPrecondition, td.Name())
	}
	return nil
}

// Relationships implements adminserver.FederationManager.
func (f federationAdmin) Relationships(ctx context.Context) ([]admin.Relationship, error) {
	var out []admin.Relationship
	for _, w := range f.p.static {
		r := registry.FederationRelationship{TrustDomain: w.rel.TrustDomain, BundleEndpointURL: w.rel.URL,
			BundleEndpointProfile: string(w.rel.Profile), EndpointSPIFFEID: w.rel.EndpointSPIFFEID}
		out = append(out, admin.Relationship{FederationRelationship: r, Configured: true})
	}
	stored, err := f.p.store.ListFederationRelationships(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range stored {
		if !f.p.isStatic[r.TrustDomain] { // shadowed by the configuration's
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
	if _, err := f.p.checkStored(ctx, r); err != nil {
		if se, ok := errors.AsType[StoreError](err); ok {
			return se.Err
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

// CreateRelationship implements adminserver.FederationManager.
func (f federationAdmin) CreateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.configured(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	if err := f.check(ctx, r); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.p.store.CreateFederationRelationship(ctx, r)
	if err != nil {
		return admin.Relationship{}, err
	}
	f.p.poke()
	return admin.Relationship{FederationRelationship: got}, nil
}

// UpdateRelationship implements adminserver.FederationManager.
func (f federationAdmin) UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.configured(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	if len(r.TrustDomainBundle) == 0 {
		cur, err := f.p.store.GetFederationRelationship(ctx, r.TrustDomain)
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
	got, err := f.p.store.UpdateFederationRelationship(ctx, r)
	if err != nil {
		return admin.Relationship{}, err
	}
	f.p.poke()
	return admin.Relationship{FederationRelationship: got}, nil
}

// DeleteRelationship implements adminserver.FederationManager. A stored
// relationship shadowed by one of the configuration can be deleted.
func (f federationAdmin) DeleteRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	err := f.p.store.DeleteFederationRelationship(ctx, td)
	if errors.Is(err, registry.ErrNotFound) {
		if cerr := f.configured(td); cerr != nil {
			return cerr
		}
	}
	if err != nil {
		return err
	}
	f.p.poke()
	return nil
}

var _ adminserver.FederationRefresher = federationAdmin{}

// RefreshRelationship implements adminserver.FederationRefresher: it fetches the
// bundle of the relationship with td now, through the watcher that polls
// it (of the configuration or of the datastore), or, for a stored
// relationship the server has not started polling yet, through a watcher
// of its own for this fetch. The watcher's regular polls go on as before.
func (f federationAdmin) RefreshRelationship(ctx context.Context, td spiffeid.TrustDomain) (admin.Refreshed, error) {
	w, err := f.watcher(ctx, td)
	if err != nil {
		return admin.Refreshed{}, err
	}
	b, changed, err := w.fetch(ctx)
	if err != nil {
		return admin.Refreshed{}, fmt.Errorf("%w: fetching the bundle of %q from %s failed; the stored bundle stays: %v",
			admin.ErrUnavailable, td.Name(), w.rel.URL, err)
	}
	seq, _ := b.SequenceNumber()
	return admin.Refreshed{TrustDomain: td, Changed: changed, SequenceNumber: seq}, nil
}

// watcher returns the watcher of the relationship with td.
func (f federationAdmin) watcher(ctx context.Context, td spiffeid.TrustDomain) (*watcher, error) {
	m := f.p
	for _, w := range m.static {
		if w.rel.TrustDomain == td {
			return w, nil
		}
	}
	if m.store == nil {
		return nil, registry.NotFoundf("federation relationship with %q", td)
	}
	sr, err := m.store.GetFederationRelationship(ctx, td)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	d := m.dynamic[td]
	m.mu.Unlock()
	if d != nil && sameRelationship(d.stored, sr) {
		return d.w, nil
	}
	rel, err := f.p.checkStored(ctx, sr)
	if err != nil {
		if se, ok := errors.AsType[StoreError](err); ok {
			return nil, se.Err
		}
		return nil, invalidRelationship{fmt.Sprintf("federation relationship with %q cannot be polled: %v", td.Name(), err)}
	}
	return f.p.newWatcher(rel, "datastore"), nil
}
