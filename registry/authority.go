package registry

import (
	"slices"
	"strings"
	"time"
)

// AuthorityKind tells the three kinds of authority of a trust domain's CA
// apart.
type AuthorityKind string

// The kinds of authority.
const (
	// AuthorityX509 is an X.509 CA: it signs X509-SVIDs.
	AuthorityX509 AuthorityKind = "x509"
	// AuthorityJWT is a JWT signing key: it signs JWT-SVIDs.
	AuthorityJWT AuthorityKind = "jwt"
	// AuthorityWIT is a WIT signing key: it signs WIT-SVIDs. Only the CA
	// of a server that signs WIT-SVIDs has one.
	AuthorityWIT AuthorityKind = "wit"
)

func (k AuthorityKind) valid() bool {
	return k == AuthorityX509 || k == AuthorityJWT || k == AuthorityWIT
}

// Known reports whether k is one of the kinds this version knows. A store
// shared with servers of a later version may hold authorities and marks of
// a kind added since: readers leave those out (as package sqlstore does)
// rather than fail, so that a new kind does not break a mixed-version
// fleet.
func (k AuthorityKind) Known() bool { return k.valid() }

// AuthorityState is the place of an authority in its rotation, as package
// ca/rotation names it.
type AuthorityState string

// The states of an authority. An authority in any of them is in the trust
// domain's bundle.
const (
	// AuthorityPrepared: published in the bundle, signing nothing yet.
	AuthorityPrepared AuthorityState = "prepared"
	// AuthorityActive: the authority that signs.
	AuthorityActive AuthorityState = "active"
	// AuthorityOld: no longer signs; kept in the bundle until what it
	// signed has expired.
	AuthorityOld AuthorityState = "old"
)

func (s AuthorityState) valid() bool {
	return s == AuthorityPrepared || s == AuthorityActive || s == AuthorityOld
}

// Limits on the authority records.
const (
	// MaxAuthorityIDLen is the maximum length in bytes of an authority ID
	// ([ServerAuthority.ID], [AuthorityMark.AuthorityID]).
	MaxAuthorityIDLen = 256
	// MaxServerAuthorities is the maximum number of authorities one server
	// publishes ([ServerBundle.Authorities]): 32 of each kind, as many as
	// ca/rotation keeps.
	MaxServerAuthorities = 96
	// MaxAuthorityCertificate is the maximum size in bytes of
	// [ServerAuthority.Certificate].
	MaxAuthorityCertificate = 64 << 10
)

// A ServerAuthority describes one authority of a server's CA, as the server
// publishes it beside its share of the bundle, so that every server of the
// trust domain can list it, hand out its taint, and check an operator's
// request about it.
type ServerAuthority struct {
	// Kind is the kind of authority.
	Kind AuthorityKind
	// ID identifies the authority to operators: the lower-case hexadecimal
	// SubjectKeyId of an X.509 CA's certificate, the kid of a JWT or WIT
	// key. 1 to
	// [MaxAuthorityIDLen] bytes of UTF-8 text without control characters.
	ID string
	// State is where the authority is in its rotation.
	State AuthorityState
	// Tainted says that its server was told to replace what the authority
	// signed.
	Tainted bool
	// NotAfter is the end of the authority's validity: nothing it signed
	// outlives it.
	NotAfter time.Time
	// Certificate is the DER of an X.509 CA's own certificate, the one
	// SVIDs chain to (with an upstream authority, an intermediate that is
	// not in the bundle), at most [MaxAuthorityCertificate] bytes; empty for
	// a JWT or WIT key. Consumers compare it byte for byte with the issuer of
	// their SVIDs.
	Certificate []byte
}

// Validate reports whether the description is valid: a known kind and
// state, an ID of 1 to [MaxAuthorityIDLen] bytes of UTF-8 text without
// control characters, an expiry between the years 1 and 9999, and a
// certificate for an X.509 CA only, of at most [MaxAuthorityCertificate]
// bytes (not parsed). The error wraps [ErrInvalid].
func (a ServerAuthority) Validate() error {
	switch {
	case !a.Kind.valid():
		return invalidf("authority kind %q is none of %q, %q and %q", truncate(string(a.Kind)), AuthorityX509, AuthorityJWT, AuthorityWIT)
	case a.ID == "":
		return invalidf("authority ID is missing")
	case len(a.ID) > MaxAuthorityIDLen:
		return invalidf("authority ID is longer than %d bytes", MaxAuthorityIDLen)
	case !validText(a.ID):
		return invalidf("authority ID is not UTF-8 text without control characters")
	case !a.State.valid():
		return invalidf("authority %s has an unknown state %q", a.ID, truncate(string(a.State)))
	case a.NotAfter.IsZero() || !validTime(a.NotAfter):
		return invalidf("authority %s expiry is missing or not between the years 1 and 9999", a.ID)
	case a.Kind == AuthorityX509 && len(a.Certificate) == 0:
		return invalidf("X.509 authority %s has no certificate", a.ID)
	case a.Kind != AuthorityX509 && len(a.Certificate) > 0:
		return invalidf("%s authority %s has a certificate", strings.ToUpper(string(a.Kind)), a.ID)
	case len(a.Certificate) > MaxAuthorityCertificate:
		return invalidf("authority %s certificate is larger than %d bytes", a.ID, MaxAuthorityCertificate)
	}
	return nil
}

// Clone returns a deep copy of the description.
func (a ServerAuthority) Clone() ServerAuthority {
	a.Certificate = slices.Clone(a.Certificate)
	return a
}

// An AuthorityMark records an operator's decision about one authority of
// one of the trust domain's servers: taint it (replace what it signed
// early) or revoke it (take it out of the bundle). Marks are how a decision
// made through one server reaches the authority's own server, which applies
// it to its CA, and every other server, which honours it in what it hands
// out even while the owner is away.
type AuthorityMark struct {
	// ServerID is the ID of the server whose CA holds the authority (see
	// [ServerBundle.ServerID]).
	ServerID string
	// Kind is the kind of authority.
	Kind AuthorityKind
	// AuthorityID is the authority's ID (see [ServerAuthority.ID]). A mark
	// is identified by Kind and AuthorityID.
	AuthorityID string
	// Revoked marks a revocation, which implies a taint; false marks a
	// taint only.
	Revoked bool
	// ExpiresAt is the authority's NotAfter: the mark serves no purpose
	// after it, and lists leave it out.
	ExpiresAt time.Time
	// UpdatedAt is set by the store.
	UpdatedAt time.Time
}

// Validate reports whether the mark is valid: a server ID as for
// [ServerBundle.Validate], a known kind, an authority ID as for
// [ServerAuthority.Validate], and a non-zero expiry no later than the year
// 9999. The error wraps [ErrInvalid].
func (m AuthorityMark) Validate() error {
	switch {
	case m.ServerID == "":
		return invalidf("authority mark server ID is missing")
	case len(m.ServerID) > MaxServerIDLen:
		return invalidf("authority mark server ID is longer than %d bytes", MaxServerIDLen)
	case !validText(m.ServerID):
		return invalidf("authority mark server ID is not UTF-8 text without control characters")
	case !m.Kind.valid():
		return invalidf("authority mark kind %q is none of %q, %q and %q", truncate(string(m.Kind)), AuthorityX509, AuthorityJWT, AuthorityWIT)
	case m.AuthorityID == "":
		return invalidf("authority mark authority ID is missing")
	case len(m.AuthorityID) > MaxAuthorityIDLen:
		return invalidf("authority mark authority ID is longer than %d bytes", MaxAuthorityIDLen)
	case !validText(m.AuthorityID):
		return invalidf("authority mark authority ID is not UTF-8 text without control characters")
	case m.ExpiresAt.IsZero() || !validTime(m.ExpiresAt):
		return invalidf("authority mark expiry is missing or not between the years 1 and 9999")
	}
	return nil
}

// PrepareAuthorityMark validates m for
// [ServerBundleStore.PutAuthorityMark] and returns the mark to store, with
// ExpiresAt in store form and UpdatedAt set to now; stores then or in the
// stored Revoked. Errors wrap [ErrInvalid].
func PrepareAuthorityMark(m AuthorityMark, now time.Time) (AuthorityMark, error) {
	if err := m.Validate(); err != nil {
		return AuthorityMark{}, err
	}
	m.ExpiresAt = StoreTime(m.ExpiresAt)
	m.UpdatedAt = StoreTime(now)
	return m, nil
}
