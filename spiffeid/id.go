package spiffeid

import (
	"fmt"
	"net/url"
	"strings"
)

const schemePrefix = "spiffe://"

// ID is a SPIFFE ID. The zero value is not a valid ID; test for it with
// [ID.IsZero]. IDs are comparable with == and usable as map keys: two IDs are
// equal exactly when their strings are equal (ID rule 18).
type ID struct {
	// s is the whole ID, "spiffe://" + trust domain + path. It is always
	// valid, or empty for the zero value.
	s string
	// pathIdx is the index in s where the path starts (len(s) without path).
	pathIdx int
}

// FromString parses a SPIFFE ID. The input must already be canonical: the
// lowercase "spiffe://" prefix, a valid trust domain name of at most 255 bytes,
// and an optional valid path, with no query, fragment, port, user information
// or percent-encoding. It does not allocate.
func FromString(id string) (ID, error) {
	if id == "" {
		return ID{}, errEmpty
	}
	if !strings.HasPrefix(id, schemePrefix) {
		return ID{}, errWrongScheme // ID rule 1
	}
	rest := id[len(schemePrefix):]
	i, err := trustDomainEnd(rest)
	if err != nil {
		return ID{}, err
	}
	if i == 0 {
		return ID{}, errMissingTrustDomain // ID rule 2
	}
	if i > maxTrustDomainLen {
		return ID{}, errTrustDomainTooLong // ID rule 8
	}
	if i < len(rest) {
		if err := validateAbsPath(rest[i:]); err != nil {
			return ID{}, err
		}
	}
	return ID{s: id, pathIdx: len(schemePrefix) + i}, nil
}

// FromStringf parses a SPIFFE ID from a string formatted with [fmt.Sprintf].
func FromStringf(format string, args ...any) (ID, error) {
	return FromString(fmt.Sprintf(format, args...))
}

// FromURI parses a SPIFFE ID from a URI, which must be exactly a SPIFFE ID once
// written out (see [FromString]). A nil URI is an error.
func FromURI(uri *url.URL) (ID, error) {
	if uri == nil {
		return ID{}, errNilURI
	}
	return FromString(uri.String())
}

// FromPath returns the ID with the given path in trust domain td. The path must
// pass [ValidatePath]; the empty path gives the trust domain's own ID.
func FromPath(td TrustDomain, path string) (ID, error) {
	if err := ValidatePath(path); err != nil {
		return ID{}, err
	}
	return makeID(td, path)
}

// FromPathf is like [FromPath] with a path formatted by [fmt.Sprintf].
func FromPathf(td TrustDomain, format string, args ...any) (ID, error) {
	path, err := FormatPath(format, args...)
	if err != nil {
		return ID{}, err
	}
	return makeID(td, path)
}

// FromSegments returns the ID in trust domain td whose path is the given
// segments joined with slashes. Every segment must pass
// [ValidatePathSegment]; no segments gives the trust domain's own ID.
func FromSegments(td TrustDomain, segments ...string) (ID, error) {
	path, err := JoinPathSegments(segments...)
	if err != nil {
		return ID{}, err
	}
	return makeID(td, path)
}

// makeID joins a trust domain and an already validated path.
func makeID(td TrustDomain, path string) (ID, error) {
	if td.IsZero() {
		return ID{}, errZeroTrustDomain
	}
	return ID{s: schemePrefix + td.name + path, pathIdx: len(schemePrefix) + len(td.name)}, nil
}

// TrustDomain returns the trust domain of the ID, or the zero TrustDomain for
// the zero ID.
func (id ID) TrustDomain() TrustDomain {
	if id.IsZero() {
		return TrustDomain{}
	}
	return TrustDomain{name: id.s[len(schemePrefix):id.pathIdx]}
}

// MemberOf reports whether the ID belongs to trust domain td. The zero ID is a
// member of no trust domain (go-spiffe reports the zero ID as a member of the
// zero trust domain).
func (id ID) MemberOf(td TrustDomain) bool {
	return !id.IsZero() && id.TrustDomain() == td
}

// Path returns the path of the ID ("" when it has none), e.g. "/ns/prod".
func (id ID) Path() string {
	return id.s[id.pathIdx:]
}

// String returns the ID as a string, e.g. "spiffe://example.org/foo/bar", or ""
// for the zero ID. It does not allocate.
func (id ID) String() string {
	return id.s
}

// URL returns the ID as a new URL, or an empty URL for the zero ID.
func (id ID) URL() *url.URL {
	if id.IsZero() {
		return &url.URL{}
	}
	return &url.URL{
		Scheme: "spiffe",
		Host:   id.TrustDomain().name,
		Path:   id.Path(),
	}
}

// IsZero reports whether the ID is the zero value.
func (id ID) IsZero() bool {
	return id.s == ""
}

// AppendPath returns the ID with path appended to its path. The path must pass
// [ValidatePath]. It fails on the zero ID.
func (id ID) AppendPath(path string) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot append path on a zero ID value")
	}
	if err := ValidatePath(path); err != nil {
		return ID{}, err
	}
	return ID{s: id.s + path, pathIdx: id.pathIdx}, nil
}

// AppendPathf is like [ID.AppendPath] with a path formatted by [fmt.Sprintf].
func (id ID) AppendPathf(format string, args ...any) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot append path on a zero ID value")
	}
	path, err := FormatPath(format, args...)
	if err != nil {
		return ID{}, err
	}
	return ID{s: id.s + path, pathIdx: id.pathIdx}, nil
}

// AppendSegments returns the ID with the given segments appended to its path.
// Every segment must pass [ValidatePathSegment]. It fails on the zero ID.
func (id ID) AppendSegments(segments ...string) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot append path segments on a zero ID value")
	}
	path, err := JoinPathSegments(segments...)
	if err != nil {
		return ID{}, err
	}
	return ID{s: id.s + path, pathIdx: id.pathIdx}, nil
}

// ReplacePath returns the ID in the same trust domain with its path replaced by
// path, which must pass [ValidatePath]. It fails on the zero ID.
func (id ID) ReplacePath(path string) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot replace path on a zero ID value")
	}
	return FromPath(id.TrustDomain(), path)
}

// ReplacePathf is like [ID.ReplacePath] with a path formatted by
// [fmt.Sprintf].
func (id ID) ReplacePathf(format string, args ...any) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot replace path on a zero ID value")
	}
	return FromPathf(id.TrustDomain(), format, args...)
}

// ReplaceSegments returns the ID in the same trust domain with its path
// replaced by the joined segments, each of which must pass
// [ValidatePathSegment]. It fails on the zero ID.
func (id ID) ReplaceSegments(segments ...string) (ID, error) {
	if id.IsZero() {
		return ID{}, fmt.Errorf("spiffeid: cannot replace path segments on a zero ID value")
	}
	return FromSegments(id.TrustDomain(), segments...)
}

// MarshalText returns the ID as text, or nil for the zero ID.
func (id ID) MarshalText() ([]byte, error) {
	if id.IsZero() {
		return nil, nil
	}
	return []byte(id.s), nil
}

// UnmarshalText parses text as a SPIFFE ID with [FromString]. Empty text sets
// the zero ID.
func (id *ID) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*id = ID{}
		return nil
	}
	parsed, err := FromString(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}
