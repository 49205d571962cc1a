package registry

import (
	"slices"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Limits on the size of an [Entry]. [Entry.Validate] rejects entries that
// exceed them, so one entry can never make a store or an index do unbounded
// work.
const (
	// MaxSelectors is the maximum number of selectors of one entry.
	MaxSelectors = 64
	// MaxDNSNames is the maximum number of DNS names of one entry.
	MaxDNSNames = 64
	// MaxDNSNameLen is the maximum length in bytes of one DNS name.
	MaxDNSNameLen = 253
	// MaxFederatesWith is the maximum number of federated trust domains of one
	// entry.
	MaxFederatesWith = 64
	// MaxHintLen is the maximum length in bytes of [Entry.Hint].
	MaxHintLen = 1024
	// MaxIDLen is the maximum length in bytes of [Entry.SPIFFEID] and
	// [Entry.ParentID] in string form (the SPIFFE-ID standard asks
	// implementations to support at least 2048 bytes).
	MaxIDLen = 2048
)

// The range of a non-zero [Entry.ExpiresAt]: from the first second after
// the epoch (SPIRE's expiry 0 means none) to the last second of year 9999,
// the last that time's JSON and RFC 3339 forms can write.
var (
	MinExpiry = time.Unix(1, 0).UTC()
	MaxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// An Entry says who gets which identity: a workload whose attested
// selectors include all of Selectors, and that is served by the agent or
// node alias ParentID, receives SVIDs for SPIFFEID.
//
// An entry grants an identity and, when Downstream is set, the right to
// have the trust domain's CA sign an intermediate CA: no entry makes its
// workload an administrator of the registry.
//
// Entries are plain values. Stores never keep a reference to the slices of an
// entry they are given and always return copies.
type Entry struct {
	// ID is the entry's identifier: 32 lowercase hexadecimal digits
	// ([ValidEntryID]), assigned by the store on Create unless the caller
	// chose it. It is empty in an entry that was never stored.
	ID string
	// SPIFFEID is the identity issued to matching workloads. It must have a
	// path.
	SPIFFEID spiffeid.ID
	// ParentID is the SPIFFE ID of the agent or node alias entitled to obtain
	// this entry. It must not be zero.
	ParentID spiffeid.ID
	// Selectors must all be present in a workload's attested selectors for
	// the entry to apply. At least one, at most [MaxSelectors], no duplicates.
	// Stores keep them sorted by [attest.Selector.Compare].
	Selectors []attest.Selector
	// X509SVIDTTL is the lifetime of X.509-SVIDs issued for the entry; zero
	// means the issuer's default. Stores refuse to write a non-zero TTL
	// below [MinSVIDTTL].
	X509SVIDTTL time.Duration
	// JWTSVIDTTL is the lifetime of JWT-SVIDs issued for the entry; zero means
	// the issuer's default. Stores refuse to write a non-zero TTL below
	// [MinSVIDTTL].
	JWTSVIDTTL time.Duration
	// DNSNames are added to X.509-SVIDs as DNS SANs; the first one is also the
	// subject common name. At most [MaxDNSNames], no duplicates.
	DNSNames []string
	// FederatesWith lists the foreign trust domains whose bundles a matching
	// workload receives. At most [MaxFederatesWith], no duplicates. Stores
	// keep them sorted.
	FederatesWith []spiffeid.TrustDomain
	// Hint is an opaque string, at most [MaxHintLen] bytes, that helps a
	// workload choose among several SVIDs.
	Hint string
	// Downstream, when true, makes the entry's workload a downstream
	// (nested) server of the trust domain (SPIRE's downstream entries): a
	// caller presenting an X509-SVID for SPIFFEID may have the issuing
	// server sign an intermediate CA for its own key through the node API,
	// and publish its JWT keys in the trust domain's bundle. False grants
	// the identity only.
	Downstream bool
	// ExpiresAt, if not zero, is when the entry ends (SPIRE's entry
	// expiry): from then on no index serves it (registry/index leaves it
	// out, so agents stop serving its SVIDs) and a server's pruner deletes
	// it from the store. Stores keep it in UTC to the second, as SPIRE does
	// (seconds since the epoch). It must lie between [MinExpiry] and
	// [MaxExpiry]. Stores accept one in the past: whether a caller may set
	// that is the caller's policy (the admin API refuses it).
	ExpiresAt time.Time
	// Revision is 1 after Create and grows by one on every Update. Update and
	// Delete use it for optimistic concurrency control.
	Revision int64
	// CreatedAt and UpdatedAt are set by the store (UTC, microsecond
	// precision).
	CreatedAt, UpdatedAt time.Time
}

// Validate checks the fields a caller provides: SPIFFEID, ParentID,
// Selectors, TTLs, DNSNames, FederatesWith, Hint and ExpiresAt, against the rules
// documented on [Entry] and the Max* limits. It does not check the
// store-assigned fields. The error wraps [ErrInvalid] and names the field.
func (e Entry) Validate() error {
	switch {
	case e.SPIFFEID.IsZero():
		return invalidf("entry SPIFFE ID is missing")
	case e.SPIFFEID.Path() == "":
		return invalidf("entry SPIFFE ID %q has no path", e.SPIFFEID)
	case len(e.SPIFFEID.String()) > MaxIDLen:
		return invalidf("entry SPIFFE ID is longer than %d bytes", MaxIDLen)
	case e.ParentID.IsZero():
		return invalidf("entry parent ID is missing")
	case len(e.ParentID.String()) > MaxIDLen:
		return invalidf("entry parent ID is longer than %d bytes", MaxIDLen)
	case len(e.Selectors) == 0:
		return invalidf("entry has no selectors")
	case len(e.Selectors) > MaxSelectors:
		return invalidf("entry has %d selectors; at most %d are allowed", len(e.Selectors), MaxSelectors)
	case e.X509SVIDTTL < 0:
		return invalidf("entry X509-SVID TTL is negative")
	case e.JWTSVIDTTL < 0:
		return invalidf("entry JWT-SVID TTL is negative")
	case len(e.DNSNames) > MaxDNSNames:
		return invalidf("entry has %d DNS names; at most %d are allowed", len(e.DNSNames), MaxDNSNames)
	case len(e.FederatesWith) > MaxFederatesWith:
		return invalidf("entry federates with %d trust domains; at most %d are allowed", len(e.FederatesWith), MaxFederatesWith)
	case len(e.Hint) > MaxHintLen:
		return invalidf("entry hint is longer than %d bytes", MaxHintLen)
	case hasControl(e.Hint):
		return invalidf("entry hint contains a control character")
	case !e.ExpiresAt.IsZero() && (e.ExpiresAt.Before(MinExpiry) || e.ExpiresAt.After(MaxExpiry)):
		return invalidf("entry expiry %d (seconds since the epoch) is out of range: it must be from %d to %d, or none",
			e.ExpiresAt.Unix(), MinExpiry.Unix(), MaxExpiry.Unix())
	}
	seen := make(map[attest.Selector]struct{}, len(e.Selectors))
	for _, s := range e.Selectors {
		if err := validateSelector("entry selector", s); err != nil {
			return err
		}
		if _, dup := seen[s]; dup {
			return invalidf("entry has duplicate selector %q", truncate(s.String()))
		}
		seen[s] = struct{}{}
	}
	for i, name := range e.DNSNames {
		if err := validateDNSName(name); err != nil {
			return err
		}
		if slices.Contains(e.DNSNames[:i], name) {
			return invalidf("entry has duplicate DNS name %q", name)
		}
	}
	for i, td := range e.FederatesWith {
		if td.IsZero() {
			return invalidf("entry federates with an empty trust domain")
		}
		if slices.Contains(e.FederatesWith[:i], td) {
			return invalidf("entry federates with %q twice", td)
		}
	}
	return nil
}

// Expired reports whether the entry has an expiry and it has come at now.
func (e Entry) Expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// Clone returns a deep copy of the entry: its slices are not shared with e.
func (e Entry) Clone() Entry {
	e.Selectors = slices.Clone(e.Selectors)
	e.DNSNames = slices.Clone(e.DNSNames)
	e.FederatesWith = slices.Clone(e.FederatesWith)
	return e
}

// validateDNSName accepts a host name of letter-digit-hyphen labels, with an
// optional leading "*." wildcard label, as used in X.509 DNS SANs.
func validateDNSName(name string) error {
	if name == "" {
		return invalidf("entry has an empty DNS name")
	}
	if len(name) > MaxDNSNameLen {
		return invalidf("entry DNS name is longer than %d bytes", MaxDNSNameLen)
	}
	rest := strings.TrimPrefix(name, "*.")
	for label := range strings.SplitSeq(rest, ".") {
		if !validLabel(label) {
			return invalidf("entry DNS name %q is not a valid host name", name)
		}
	}
	return nil
}

func validLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
