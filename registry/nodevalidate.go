package registry

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/attest"
)

// Limits on the node-side records. Their Validate methods reject records
// that exceed them, so that no record makes a store do unbounded work.
const (
	// MaxAttestorTypeLen is the maximum length in bytes of
	// [Agent.AttestorType].
	MaxAttestorTypeLen = 128
	// MaxSerialNumberLen is the maximum length of [Agent.SerialNumber] and
	// [Agent.PreviousSerialNumber]: 40 hexadecimal digits, for the 20 octets
	// RFC 5280 (section 4.1.2.2) allows a certificate serial number.
	MaxSerialNumberLen = 40
	// MaxTokenIDLen is the maximum length in bytes of [JoinToken.ID].
	MaxTokenIDLen = 64
	// MaxServerIDLen is the maximum length in bytes of
	// [ServerBundle.ServerID].
	MaxServerIDLen = 255
)

// tokenHashLen is the length of a SHA-256 digest.
const tokenHashLen = 32

// Validate reports whether the agent record is valid: an ID with a path of
// at most [MaxIDLen] bytes; an attestor type of 1 to [MaxAttestorTypeLen]
// bytes of UTF-8 text without control characters; at most [MaxSelectors]
// valid, distinct selectors of UTF-8 text; serial numbers that are empty or
// 1 to [MaxSerialNumberLen] lower-case hexadecimal digits; and an expiry
// between the years 1 and 9999. It does not check the store-assigned
// timestamps, nor the order of the selectors, which stores sort. The error
// wraps [ErrInvalid] and names the field.
func (a Agent) Validate() error {
	switch {
	case a.ID.IsZero():
		return invalidf("agent ID is missing")
	case a.ID.Path() == "":
		return invalidf("agent ID %q has no path", a.ID)
	case len(a.ID.String()) > MaxIDLen:
		return invalidf("agent ID is longer than %d bytes", MaxIDLen)
	case a.AttestorType == "":
		return invalidf("agent attestor type is missing")
	case len(a.AttestorType) > MaxAttestorTypeLen:
		return invalidf("agent attestor type is longer than %d bytes", MaxAttestorTypeLen)
	case !validText(a.AttestorType):
		return invalidf("agent attestor type is not UTF-8 text without control characters")
	case len(a.Selectors) > MaxSelectors:
		return invalidf("agent has %d selectors; at most %d are allowed", len(a.Selectors), MaxSelectors)
	case !validSerial(a.SerialNumber):
		return invalidf("agent serial number is not 1 to %d lower-case hexadecimal digits", MaxSerialNumberLen)
	case !validSerial(a.PreviousSerialNumber):
		return invalidf("agent previous serial number is not 1 to %d lower-case hexadecimal digits", MaxSerialNumberLen)
	case !validTime(a.ExpiresAt):
		return invalidf("agent expiry is not between the years 1 and 9999")
	}
	seen := make(map[attest.Selector]struct{}, len(a.Selectors))
	for i, s := range a.Selectors {
		if err := validateSelector(fmt.Sprintf("agent selector %d", i), s); err != nil {
			return err
		}
		if _, dup := seen[s]; dup {
			return invalidf("agent has duplicate selector %q", truncate(s.String()))
		}
		seen[s] = struct{}{}
	}
	return nil
}

// Clone returns a deep copy of the agent record: its selectors are not
// shared with a.
func (a Agent) Clone() Agent {
	a.Selectors = slices.Clone(a.Selectors)
	return a
}

// Validate reports whether the join token is valid: an ID of 1 to
// [MaxTokenIDLen] bytes from [A-Za-z0-9_-]; a SecretHash of exactly 32
// bytes (a SHA-256 digest); an AgentID that is zero or has a path of at most
// [MaxIDLen] bytes; and a non-zero expiry no later than the year 9999. The
// error wraps [ErrInvalid] and names the field; it never contains the hash.
func (t JoinToken) Validate() error {
	switch {
	case !ValidTokenID(t.ID):
		return invalidf("join token ID is not 1 to %d bytes of [A-Za-z0-9_-]", MaxTokenIDLen)
	case len(t.SecretHash) != tokenHashLen:
		return invalidf("join token secret hash is %d bytes, not %d", len(t.SecretHash), tokenHashLen)
	case !t.AgentID.IsZero() && t.AgentID.Path() == "":
		return invalidf("join token agent ID %q has no path", t.AgentID)
	case len(t.AgentID.String()) > MaxIDLen:
		return invalidf("join token agent ID is longer than %d bytes", MaxIDLen)
	case t.ExpiresAt.IsZero():
		return invalidf("join token expiry is missing")
	case !validTime(t.ExpiresAt):
		return invalidf("join token expiry is not between the years 1 and 9999")
	}
	return nil
}

// Clone returns a deep copy of the token: its SecretHash is not shared
// with t.
func (t JoinToken) Clone() JoinToken {
	t.SecretHash = slices.Clone(t.SecretHash)
	return t
}

// ValidTokenID reports whether id can name a [JoinToken]: 1 to
// [MaxTokenIDLen] bytes, each a letter, digit, '_' or '-'. Stores treat
// other IDs as not found without consulting their data.
func ValidTokenID(id string) bool {
	if id == "" || len(id) > MaxTokenIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate reports whether the bundle is valid: a non-zero trust domain and
// a non-empty document of at most [MaxBundleDocument] bytes. It does not
// parse the document. The error wraps [ErrInvalid] and names the field.
func (b FederatedBundle) Validate() error {
	switch {
	case b.TrustDomain.IsZero():
		return invalidf("federated bundle trust domain is missing")
	case len(b.Document) == 0:
		return invalidf("federated bundle of %q has an empty document", b.TrustDomain)
	case len(b.Document) > MaxBundleDocument:
		return invalidf("federated bundle of %q is larger than %d bytes", b.TrustDomain, MaxBundleDocument)
	}
	return nil
}

// Clone returns a deep copy of the bundle: its document is not shared
// with b.
func (b FederatedBundle) Clone() FederatedBundle {
	b.Document = slices.Clone(b.Document)
	return b
}

// Validate reports whether the contribution is valid: a server ID of 1 to
// [MaxServerIDLen] bytes of UTF-8 text without control characters, a
// non-empty document of at most [MaxBundleDocument] bytes (not parsed), a
// non-zero expiry no later than the year 9999, and at most
// [MaxServerAuthorities] valid authorities, no two of one kind with one ID.
// The error wraps [ErrInvalid] and names the field.
func (b ServerBundle) Validate() error {
	switch {
	case b.ServerID == "":
		return invalidf("server bundle server ID is missing")
	case len(b.ServerID) > MaxServerIDLen:
		return invalidf("server bundle server ID is longer than %d bytes", MaxServerIDLen)
	case !validText(b.ServerID):
		return invalidf("server bundle server ID is not UTF-8 text without control characters")
	case len(b.Document) == 0:
		return invalidf("server bundle of %q has an empty document", b.ServerID)
	case len(b.Document) > MaxBundleDocument:
		return invalidf("server bundle of %q is larger than %d bytes", b.ServerID, MaxBundleDocument)
	case b.ExpiresAt.IsZero():
		return invalidf("server bundle of %q has no expiry", b.ServerID)
	case !validTime(b.ExpiresAt):
		return invalidf("server bundle of %q expiry is not between the years 1 and 9999", b.ServerID)
	case len(b.Authorities) > MaxServerAuthorities:
		return invalidf("server bundle of %q has %d authorities; at most %d are allowed", b.ServerID, len(b.Authorities), MaxServerAuthorities)
	}
	type key struct {
		kind AuthorityKind
		id   string
	}
	seen := make(map[key]bool, len(b.Authorities))
	for _, a := range b.Authorities {
		if err := a.Validate(); err != nil {
			return err
		}
		k := key{a.Kind, a.ID}
		if seen[k] {
			return invalidf("server bundle of %q describes %s authority %s twice", b.ServerID, a.Kind, a.ID)
		}
		seen[k] = true
	}
	return nil
}

// Clone returns a deep copy of the contribution: its document and
// authorities are not shared with b.
func (b ServerBundle) Clone() ServerBundle {
	b.Document = slices.Clone(b.Document)
	if b.Authorities != nil {
		out := make([]ServerAuthority, len(b.Authorities))
		for i, a := range b.Authorities {
			out[i] = a.Clone()
		}
		b.Authorities = out
	}
	return b
}

// The functions below help implement the node-side stores; applications do
// not need them.

// PrepareAgent validates a for [AgentStore.PutAgent] (or UpdateAgent) and returns the record
// to store: a deep copy with sorted selectors, ExpiresAt in store form, and
// both timestamps set to now (see [StoreTime]). A store replacing a record
// keeps the old CreatedAt. Errors wrap [ErrInvalid].
func PrepareAgent(a Agent, now time.Time) (Agent, error) {
	if err := a.Validate(); err != nil {
		return Agent{}, err
	}
	a = a.Clone()
	slices.SortFunc(a.Selectors, attest.Selector.Compare)
	if len(a.Selectors) == 0 {
		a.Selectors = nil // one form for "none", whatever the store
	}
	a.ExpiresAt = StoreTime(a.ExpiresAt)
	a.CreatedAt = StoreTime(now)
	a.UpdatedAt = a.CreatedAt
	return a, nil
}

// PrepareToken validates t for [TokenStore.CreateToken] and returns the
// token to store: a deep copy with ExpiresAt in store form. Errors wrap
// [ErrInvalid].
func PrepareToken(t JoinToken) (JoinToken, error) {
	if err := t.Validate(); err != nil {
		return JoinToken{}, err
	}
	t = t.Clone()
	t.ExpiresAt = StoreTime(t.ExpiresAt)
	return t, nil
}

// PrepareBundle validates b for [BundleStore.PutBundle] and returns the
// bundle to store: a deep copy with UpdatedAt set to now. Errors wrap
// [ErrInvalid].
func PrepareBundle(b FederatedBundle, now time.Time) (FederatedBundle, error) {
	if err := b.Validate(); err != nil {
		return FederatedBundle{}, err
	}
	b = b.Clone()
	b.UpdatedAt = StoreTime(now)
	return b, nil
}

// PrepareServerBundle validates b for [ServerBundleStore.PutServerBundle]
// and returns the contribution to store: a deep copy with ExpiresAt and the
// authorities' NotAfter in store form, nil authorities for none, and
// UpdatedAt set to now. Errors wrap [ErrInvalid].
func PrepareServerBundle(b ServerBundle, now time.Time) (ServerBundle, error) {
	if err := b.Validate(); err != nil {
		return ServerBundle{}, err
	}
	b = b.Clone()
	b.ExpiresAt = StoreTime(b.ExpiresAt)
	if len(b.Authorities) == 0 {
		b.Authorities = nil // one form for "none", whatever the store
	}
	for i := range b.Authorities {
		b.Authorities[i].NotAfter = StoreTime(b.Authorities[i].NotAfter)
		if len(b.Authorities[i].Certificate) == 0 {
			b.Authorities[i].Certificate = nil
		}
	}
	b.UpdatedAt = StoreTime(now)
	return b, nil
}

// validSerial accepts "" (no SVID issued yet) or lower-case hexadecimal
// digits, at most MaxSerialNumberLen of them.
func validSerial(s string) bool {
	if len(s) > MaxSerialNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validText accepts UTF-8 text without control characters: what every
// database keeps unchanged in a text column.
func validText(s string) bool {
	return utf8.ValidString(s) && !hasControl(s)
}

// validTime accepts the times every store can keep exactly: years 1 to
// 9999, the range of RFC 3339 and of a microsecond count in an int64.
func validTime(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}
