package registry

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// The bundle endpoint profiles of a [FederationRelationship], with the
// names the SPIFFE Federation standard and SPIRE give them.
const (
	// ProfileHTTPSSPIFFE: the endpoint presents an X509-SVID with a known
	// SPIFFE ID.
	ProfileHTTPSSPIFFE = "https_spiffe"
	// ProfileHTTPSWeb: the endpoint presents a Web PKI certificate.
	ProfileHTTPSWeb = "https_web"
)

// MaxBundleEndpointURL is the longest bundle endpoint URL, in bytes, that a
// [FederationStore] keeps.
const MaxBundleEndpointURL = 2048

// MaxFederationRelationships is the most relationships a
// [FederationStore] keeps: each is a bundle endpoint every server polls.
const MaxFederationRelationships = 1024

// A FederationRelationship is a federation relationship kept in the
// datastore, so that every server sharing it polls the bundle endpoint of
// the foreign trust domain and keeps its bundle (see [BundleStore]). It is
// what SPIRE's `federation create` makes; a server's configuration may
// hold others.
type FederationRelationship struct {
	// TrustDomain is the foreign trust domain. It identifies the
	// relationship.
	TrustDomain spiffeid.TrustDomain
	// BundleEndpointURL is the https URL of the trust domain's bundle
	// endpoint, without user information, at most [MaxBundleEndpointURL]
	// bytes.
	BundleEndpointURL string
	// BundleEndpointProfile is [ProfileHTTPSSPIFFE] or [ProfileHTTPSWeb].
	BundleEndpointProfile string
	// EndpointSPIFFEID is the SPIFFE ID of an https_spiffe endpoint;
	// required for that profile, zero for https_web.
	EndpointSPIFFEID spiffeid.ID
	// TrustDomainBundle, when not empty, is a SPIFFE bundle document of
	// TrustDomain (at most [MaxBundleDocument] bytes; the store does not
	// parse it) that authenticates the first fetch from a self-serving
	// https_spiffe endpoint, until a fetched bundle is stored.
	TrustDomainBundle []byte
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt, UpdatedAt time.Time
}

// Validate reports whether r is a relationship a store may keep: a trust
// domain, an https bundle endpoint URL with a host and no user information,
// a known profile with an endpoint SPIFFE ID exactly when it is
// https_spiffe, and a bundle document no larger than [MaxBundleDocument].
// The error wraps [ErrInvalid] and names the field.
func (r FederationRelationship) Validate() error {
	if r.TrustDomain.IsZero() {
		return invalidf("federation relationship trust domain is missing")
	}
	td := r.TrustDomain.Name()
	if msg := bundleEndpointURLProblem(r.BundleEndpointURL); msg != "" {
		return invalidf("federation relationship with %q: %s", td, msg)
	}
	switch r.BundleEndpointProfile {
	case ProfileHTTPSSPIFFE:
		if r.EndpointSPIFFEID.IsZero() {
			return invalidf("federation relationship with %q: the https_spiffe profile needs the endpoint's SPIFFE ID", td)
		}
	case ProfileHTTPSWeb:
		if !r.EndpointSPIFFEID.IsZero() {
			return invalidf("federation relationship with %q: an endpoint SPIFFE ID is for the https_spiffe profile only", td)
		}
	case "":
		return invalidf("federation relationship with %q: the bundle endpoint profile is missing (https_spiffe or https_web)", td)
	default:
		return invalidf("federation relationship with %q: unknown bundle endpoint profile %q (want https_spiffe or https_web)", td, truncate(r.BundleEndpointProfile))
	}
	if len(r.TrustDomainBundle) > MaxBundleDocument {
		return invalidf("federation relationship with %q: the trust domain bundle is larger than %d bytes", td, MaxBundleDocument)
	}
	return nil
}

// bundleEndpointURLProblem checks a bundle endpoint URL: it returns what is
// wrong with it, or "".
func bundleEndpointURLProblem(raw string) string {
	if raw == "" {
		return "the bundle endpoint URL is missing"
	}
	if len(raw) > MaxBundleEndpointURL {
		return "the bundle endpoint URL is longer than " + itoa(MaxBundleEndpointURL) + " bytes"
	}
	if !utf8.ValidString(raw) {
		return "the bundle endpoint URL is not UTF-8"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "bad bundle endpoint URL: " + err.Error()
	case u.Scheme != "https":
		return "bundle endpoint URL " + strconv.Quote(truncate(raw)) + ": the scheme must be https"
	case u.User != nil:
		return "bundle endpoint URL " + strconv.Quote(truncate(raw)) + ": user information is not allowed"
	case u.Host == "":
		return "bundle endpoint URL " + strconv.Quote(truncate(raw)) + ": no host"
	}
	return ""
}

// Clone returns a deep copy of r: its bundle document is not shared.
func (r FederationRelationship) Clone() FederationRelationship {
	r.TrustDomainBundle = slices.Clone(r.TrustDomainBundle)
	return r
}

// A FederationStore keeps the federation relationships of the trust domain.
// Implementations are safe for concurrent use; a [Notifier] tells of their
// writes under [TopicFederation].
type FederationStore interface {
	// CreateFederationRelationship stores a new relationship and returns
	// it as stored. Errors wrap [ErrInvalid], or [ErrAlreadyExists] when
	// there is one with r.TrustDomain, or [ErrConflict] when the store
	// holds [MaxFederationRelationships] already.
	CreateFederationRelationship(ctx context.Context, r FederationRelationship) (FederationRelationship, error)
	// UpdateFederationRelationship replaces the relationship with
	// r.TrustDomain, keeping its CreatedAt, and returns it as stored.
	// Errors wrap [ErrInvalid], or [ErrNotFound] when there is none.
	UpdateFederationRelationship(ctx context.Context, r FederationRelationship) (FederationRelationship, error)
	// GetFederationRelationship returns the relationship with td, or an
	// error wrapping [ErrNotFound].
	GetFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) (FederationRelationship, error)
	// ListFederationRelationships returns every relationship, ordered by
	// trust domain name.
	ListFederationRelationships(ctx context.Context) ([]FederationRelationship, error)
	// DeleteFederationRelationship removes the relationship with td; the
	// bundle of td stays in the [BundleStore]. Errors wrap [ErrNotFound].
	DeleteFederationRelationship(ctx context.Context, td spiffeid.TrustDomain) error
}

// PrepareFederationRelationship validates r for
// [FederationStore.CreateFederationRelationship] (or Update) and returns the
// relationship to store: a deep copy, nil for an empty bundle, with both
// timestamps set to now (see [StoreTime]). A store replacing one keeps the
// old CreatedAt. Errors wrap [ErrInvalid].
func PrepareFederationRelationship(r FederationRelationship, now time.Time) (FederationRelationship, error) {
	if err := r.Validate(); err != nil {
		return FederationRelationship{}, err
	}
	r = r.Clone()
	if len(r.TrustDomainBundle) == 0 {
		r.TrustDomainBundle = nil // one form for "none", whatever the store
	}
	r.CreatedAt = StoreTime(now)
	r.UpdatedAt = r.CreatedAt
	return r, nil
}

// TooManyFederationRelationships returns the error a store gives when it
// holds [MaxFederationRelationships] already: it wraps [ErrConflict].
func TooManyFederationRelationships() error {
	return &limitError{msg: "registry: the store holds " + itoa(MaxFederationRelationships) + " federation relationships, the most it keeps", kind: ErrConflict}
}

// FederationRelationshipExists returns the error a store gives when a
// relationship with td exists already: it wraps [ErrAlreadyExists].
func FederationRelationshipExists(td spiffeid.TrustDomain) error {
	return &limitError{msg: "registry: a federation relationship with " + strconv.Quote(td.Name()) + " exists already", kind: ErrAlreadyExists}
}

type limitError struct {
	msg  string
	kind error
}

func (e *limitError) Error() string        { return e.msg }
func (e *limitError) Is(target error) bool { return target == e.kind }
