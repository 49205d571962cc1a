package fedpoll

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Profile is how a bundle endpoint authenticates itself to the servers
// that fetch from it (Fed rule 6). Its values are the profile names of the
// SPIFFE Federation standard, so that a name read from a file converts
// with Profile(name); New refuses any other.
type Profile string

// Bundle endpoint profiles (Fed rule 6).
const (
	// ProfileHTTPSSPIFFE authenticates a bundle endpoint with an X509-SVID
	// (Fed rules 14-18).
	ProfileHTTPSSPIFFE Profile = "https_spiffe"
	// ProfileHTTPSWeb authenticates a bundle endpoint with a Web PKI
	// certificate (Fed rules 12-13).
	ProfileHTTPSWeb Profile = "https_web"
)

// A Relationship is a federation relationship: the server polls the bundle
// endpoint at URL for the bundle of TrustDomain and keeps it in the
// datastore, from where it reaches the agents and the workloads whose
// entries federate with TrustDomain (Fed rule 5). A relationship is
// one-way (Fed rule 4). Every parameter is given explicitly; none is
// derived from another (Fed rule 2).
type Relationship struct {
	// TrustDomain is the foreign trust domain whose bundle the endpoint
	// serves. Required; never the server's own trust domain.
	TrustDomain spiffeid.TrustDomain

	// URL is the bundle endpoint: https, no user information (Fed rule 8).
	// Required.
	URL string

	// Profile is ProfileHTTPSSPIFFE or ProfileHTTPSWeb. Required.
	Profile Profile

	// EndpointSPIFFEID is the SPIFFE ID the endpoint's X509-SVID must
	// carry. Required for ProfileHTTPSSPIFFE, refused for ProfileHTTPSWeb.
	EndpointSPIFFEID spiffeid.ID

	// BootstrapBundle is a bundle of TrustDomain holding at least one
	// X.509 authority, used to authenticate the first fetch from a
	// self-serving https_spiffe endpoint (one whose ID is in TrustDomain);
	// later fetches use the latest stored bundle (Fed rule 17). Needed for
	// such an endpoint unless Stores.Bundles already holds a bundle of
	// TrustDomain; refused otherwise: the bundle of another endpoint trust
	// domain comes from its own relationship or `bundle set` (Fed rule 18).
	// A program reading PEM CA certificates makes one with
	// spiffebundle.FromX509Authorities.
	BootstrapBundle *spiffebundle.Bundle

	// WebPKIRoots are the CA certificates that the certificate of an
	// https_web endpoint must chain to. Nil means the system roots.
	// Refused for ProfileHTTPSSPIFFE.
	WebPKIRoots *x509.CertPool
}

// Checked is a Relationship that Check accepted, ready to be polled.
type Checked struct {
	Relationship
	bootstrap *x509bundle.Bundle // self-serving https_spiffe only
}

func (r Checked) selfServing() bool {
	return r.Profile == ProfileHTTPSSPIFFE && r.EndpointSPIFFEID.MemberOf(r.TrustDomain)
}

// validateEndpointURL checks a bundle endpoint URL (Fed rule 8).
func validateEndpointURL(raw string) error {
	if raw == "" {
		return errors.New("the URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("URL %q: the scheme must be https", raw)
	case u.User != nil:
		return fmt.Errorf("URL %q: user information is not allowed", raw)
	case u.Host == "":
		return fmt.Errorf("URL %q: no host", raw)
	}
	return nil
}

// MaxRelationships bounds the relationships of a server's configuration:
// each is a goroutine polling an endpoint.
const MaxRelationships = 1024

// CheckAll checks the relationships of a server's configuration: each
// with Check, at most MaxRelationships, none twice. A failure of stored is
// returned as a StoreError naming the relationship; any other error says
// what is wrong, and with which relationship.
func CheckAll(own spiffeid.TrustDomain, rels []Relationship, stored func(spiffeid.TrustDomain) (bool, error)) ([]Checked, error) {
	if len(rels) > MaxRelationships {
		return nil, fmt.Errorf("at most %d federation relationships", MaxRelationships)
	}
	seen := map[spiffeid.TrustDomain]bool{}
	out := make([]Checked, 0, len(rels))
	for i, r := range rels {
		v, err := Check(own, r, stored)
		if err != nil {
			name := r.TrustDomain.Name()
			if name == "" {
				name = fmt.Sprintf("#%d", i+1)
			}
			if se, ok := errors.AsType[StoreError](err); ok {
				return nil, StoreError{fmt.Errorf("server: federation relationship %s: %w", name, se.Err)}
			}
			return nil, fmt.Errorf("federation relationship %s: %w", name, err)
		}
		if seen[r.TrustDomain] {
			return nil, fmt.Errorf("federation relationship %s: configured twice", r.TrustDomain.Name())
		}
		seen[r.TrustDomain] = true
		out = append(out, v)
	}
	return out, nil
}

// A StoreError is a failure to read the store while checking a
// relationship: not the relationship's fault.
type StoreError struct{ Err error }

func (e StoreError) Error() string { return e.Err.Error() }

// Check checks a relationship of a server of trust domain own strictly;
// stored says whether the bundle store holds a bundle of a trust domain
// (see Stored), and a failure of it is returned as a StoreError. The
// other errors say what is wrong with r, without naming it.
func Check(own spiffeid.TrustDomain, r Relationship, stored func(spiffeid.TrustDomain) (bool, error)) (Checked, error) {
	v := Checked{Relationship: r}
	switch {
	case r.TrustDomain.IsZero():
		return v, errors.New("the trust domain is required")
	case r.TrustDomain == own:
		// Fed rule 23 [ours].
		return v, errors.New("a trust domain's own bundle can never be overwritten through federation")
	}
	if err := validateEndpointURL(r.URL); err != nil {
		return v, err
	}
	switch r.Profile {
	case ProfileHTTPSSPIFFE:
		if r.EndpointSPIFFEID.IsZero() {
			return v, errors.New("the https_spiffe profile needs the endpoint's SPIFFE ID") // Fed rule 14
		}
		if r.WebPKIRoots != nil {
			return v, errors.New("the Web PKI roots are for the https_web profile only")
		}
		if !v.selfServing() {
			if r.BootstrapBundle != nil {
				return v, fmt.Errorf("a bootstrap bundle is only for an endpoint of the trust domain it serves; the bundle of %s must come from its own relationship or `bundle set`", r.EndpointSPIFFEID.TrustDomain().Name())
			}
			return v, nil
		}
		if b := r.BootstrapBundle; b != nil {
			switch {
			case b.TrustDomain() != r.TrustDomain:
				return v, fmt.Errorf("the bootstrap bundle is of trust domain %q", b.TrustDomain().Name())
			case len(b.X509Authorities()) == 0:
				return v, errors.New("the bootstrap bundle holds no X.509 authority")
			}
			v.bootstrap = b.X509Bundle()
			return v, nil
		}
		ok, err := stored(r.TrustDomain)
		if err != nil {
			return v, StoreError{err}
		}
		if !ok {
			return v, errors.New("a self-serving https_spiffe endpoint needs a bootstrap bundle, or a bundle set with `bundle set`, to authenticate the first fetch")
		}
		return v, nil
	case ProfileHTTPSWeb:
		if !r.EndpointSPIFFEID.IsZero() || r.BootstrapBundle != nil {
			return v, errors.New("an endpoint SPIFFE ID and a bootstrap bundle are for the https_spiffe profile only")
		}
		return v, nil
	case "":
		return v, errors.New("the profile is required (https_spiffe or https_web)")
	}
	return v, fmt.Errorf("unknown profile %q (want https_spiffe or https_web)", r.Profile)
}

// sameRelationship reports whether two stored relationships poll alike.
func sameRelationship(a, b registry.FederationRelationship) bool {
	return a.TrustDomain == b.TrustDomain && a.BundleEndpointURL == b.BundleEndpointURL &&
		a.BundleEndpointProfile == b.BundleEndpointProfile && a.EndpointSPIFFEID == b.EndpointSPIFFEID &&
		bytes.Equal(a.TrustDomainBundle, b.TrustDomainBundle)
}

// toRelationship converts a stored relationship, parsing its bundle.
func (p *Poller) toRelationship(sr registry.FederationRelationship) (Relationship, error) {
	r := Relationship{
		TrustDomain:      sr.TrustDomain,
		URL:              sr.BundleEndpointURL,
		Profile:          Profile(sr.BundleEndpointProfile),
		EndpointSPIFFEID: sr.EndpointSPIFFEID,
	}
	if r.Profile == ProfileHTTPSWeb {
		r.WebPKIRoots = p.cfg.WebPKIRoots
	}
	if len(sr.TrustDomainBundle) > 0 {
		b, err := spiffebundle.Parse(sr.TrustDomain, sr.TrustDomainBundle)
		if err != nil {
			return r, fmt.Errorf("the trust domain bundle: %w", err)
		}
		r.BootstrapBundle = b
	}
	return r, nil
}

// checkStored checks a stored relationship as the server checks those of
// its configuration. A StoreError is a failure to read the bundle store.
func (p *Poller) checkStored(ctx context.Context, sr registry.FederationRelationship) (Checked, error) {
	r, err := p.toRelationship(sr)
	if err != nil {
		return Checked{}, err
	}
	return Check(p.cfg.TrustDomain, r, Stored(ctx, p.cfg.Bundles))
}

// Stored returns the function that says, for Check, whether bundles holds
// a bundle of a trust domain.
func Stored(ctx context.Context, bundles registry.BundleStore) func(spiffeid.TrustDomain) (bool, error) {
	return func(td spiffeid.TrustDomain) (bool, error) {
		_, err := bundles.GetBundle(ctx, td)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, registry.ErrNotFound):
			return false, nil
		}
		return false, fmt.Errorf("reading the stored bundle: %w", err)
	}
}
