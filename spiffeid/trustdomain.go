package spiffeid

import (
	"net/url"
	"strings"
)

// TrustDomain is the name of a trust domain, e.g. "example.org". The zero
// value is not a valid trust domain; test for it with [TrustDomain.IsZero].
// Trust domains are comparable with == and usable as map keys.
type TrustDomain struct {
	name string
}

// TrustDomainFromString returns the trust domain named by idOrName, which is
// either a bare name ("example.org") or a SPIFFE ID ("spiffe://example.org" or
// "spiffe://example.org/workload"), reduced to its trust domain. The name must
// be at most 255 bytes of lowercase letters, digits, '.', '-' and '_'.
func TrustDomainFromString(idOrName string) (TrustDomain, error) {
	if strings.Contains(idOrName, ":/") {
		id, err := FromString(idOrName)
		if err != nil {
			return TrustDomain{}, err
		}
		return id.TrustDomain(), nil
	}
	if err := validateTrustDomainName(idOrName); err != nil {
		return TrustDomain{}, err
	}
	return TrustDomain{name: idOrName}, nil
}

// TrustDomainFromURI returns the trust domain of a URI that is a valid SPIFFE
// ID (see [FromURI]).
func TrustDomainFromURI(uri *url.URL) (TrustDomain, error) {
	id, err := FromURI(uri)
	if err != nil {
		return TrustDomain{}, err
	}
	return id.TrustDomain(), nil
}

// Name returns the trust domain name, e.g. "example.org".
func (td TrustDomain) Name() string {
	return td.name
}

// String returns the trust domain name, e.g. "example.org".
func (td TrustDomain) String() string {
	return td.name
}

// ID returns the SPIFFE ID of the trust domain itself (no path), or the zero
// ID for the zero trust domain.
func (td TrustDomain) ID() ID {
	if td.IsZero() {
		return ID{}
	}
	return ID{s: schemePrefix + td.name, pathIdx: len(schemePrefix) + len(td.name)}
}

// IDString returns the trust domain's SPIFFE ID as a string, e.g.
// "spiffe://example.org", or "" for the zero trust domain.
func (td TrustDomain) IDString() string {
	return td.ID().String()
}

// IsZero reports whether the trust domain is the zero value.
func (td TrustDomain) IsZero() bool {
	return td.name == ""
}

// Compare compares two trust domain names bytewise and returns -1, 0 or +1.
func (td TrustDomain) Compare(other TrustDomain) int {
	return strings.Compare(td.name, other.name)
}

// MarshalText returns the trust domain name as text, or nil for the zero
// trust domain.
func (td TrustDomain) MarshalText() ([]byte, error) {
	if td.IsZero() {
		return nil, nil
	}
	return []byte(td.name), nil
}

// UnmarshalText parses text with [TrustDomainFromString]. Empty text sets the
// zero trust domain.
func (td *TrustDomain) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*td = TrustDomain{}
		return nil
	}
	parsed, err := TrustDomainFromString(string(text))
	if err != nil {
		return err
	}
	*td = parsed
	return nil
}
