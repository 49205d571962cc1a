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
