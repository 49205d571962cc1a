package wire

import (
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Relationship is the wire form of a federation relationship, with
// whether it comes from the server's configuration. Its bundle travels
// in base64, its times together or not at all.
type Relationship struct {
	TrustDomain           string     `json:"trust_domain"`
	BundleEndpointURL     string     `json:"bundle_endpoint_url"`
	BundleEndpointProfile string     `json:"bundle_endpoint_profile"`
	EndpointSPIFFEID      string     `json:"endpoint_spiffe_id,omitempty"`
	TrustDomainBundle     []byte     `json:"trust_domain_bundle,omitempty"`
	Configured            bool       `json:"configured,omitempty"`
	CreatedAt             *time.Time `json:"created_at,omitempty"`
	UpdatedAt             *time.Time `json:"updated_at,omitempty"`
}

// RelationshipToJSON converts a relationship to its wire form; configured
// says that it comes from the server's configuration.
func RelationshipToJSON(r registry.FederationRelationship, configured bool) Relationship {
	j := Relationship{
		TrustDomain:           r.TrustDomain.Name(),
		BundleEndpointURL:     r.BundleEndpointURL,
		BundleEndpointProfile: r.BundleEndpointProfile,
		TrustDomainBundle:     r.TrustDomainBundle,
		Configured:            configured,
	}
	if !r.EndpointSPIFFEID.IsZero() {
		j.EndpointSPIFFEID = r.EndpointSPIFFEID.String()
	}
	if !r.CreatedAt.IsZero() {
		c, u := r.CreatedAt.UTC(), r.UpdatedAt.UTC()
		j.CreatedAt, j.UpdatedAt = &c, &u
	}
	return j
}

// RelationshipFromJSON converts the wire form of a relationship, and says
// whether it comes from the server's configuration; errors name the
// field.
func RelationshipFromJSON(j Relationship) (r registry.FederationRelationship, configured bool, err error) {
	if r.TrustDomain, err = spiffeid.TrustDomainFromString(j.TrustDomain); err != nil {
		return registry.FederationRelationship{}, false, fmt.Errorf("trust_domain: %w", err)
	}
	if j.EndpointSPIFFEID != "" {
		if r.EndpointSPIFFEID, err = spiffeid.FromString(j.EndpointSPIFFEID); err != nil {
			return registry.FederationRelationship{}, false, fmt.Errorf("endpoint_spiffe_id: %w", err)
		}
	}
	r.BundleEndpointURL, r.BundleEndpointProfile, r.TrustDomainBundle = j.BundleEndpointURL, j.BundleEndpointProfile, j.TrustDomainBundle
	if j.CreatedAt != nil {
		r.CreatedAt = *j.CreatedAt
	}
	if j.UpdatedAt != nil {
		r.UpdatedAt = *j.UpdatedAt
	}
	return r, j.Configured, nil
}

// Refreshed is the answer to the refresh of a relationship's bundle.
type Refreshed struct {
	TrustDomain    string `json:"trust_domain"`
	Changed        bool   `json:"changed"`
	SequenceNumber uint64 `json:"sequence_number"`
}
