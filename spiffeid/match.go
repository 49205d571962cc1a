package spiffeid

import (
	"fmt"
	"strings"
)

// Matcher decides whether a SPIFFE ID is acceptable: it returns nil to accept
// the ID and an error saying why otherwise. Matchers are used to authorize
// peers after their SVID has been verified.
type Matcher func(ID) error

// MatchAny returns a Matcher that accepts every ID. Use it only where any
// authenticated peer of a trusted trust domain may connect.
func MatchAny() Matcher {
	return func(ID) error { return nil }
}

// MatchID returns a Matcher that accepts exactly the expected ID.
func MatchID(expected ID) Matcher {
	return func(actual ID) error {
		if actual != expected {
			return fmt.Errorf("spiffeid: unexpected ID %q", actual)
		}
		return nil
	}
}

// MatchOneOf returns a Matcher that accepts any of the expected IDs. With no
// expected IDs it accepts nothing.
func MatchOneOf(expected ...ID) Matcher {
	set := make(map[ID]struct{}, len(expected))
	for _, id := range expected {
		set[id] = struct{}{}
	}
	return func(actual ID) error {
		if _, ok := set[actual]; !ok {
			return fmt.Errorf("spiffeid: unexpected ID %q", actual)
		}
		return nil
	}
}

// MatchMemberOf returns a Matcher that accepts any ID in the expected trust
// domain. The zero trust domain matches nothing.
func MatchMemberOf(expected TrustDomain) Matcher {
	return func(actual ID) error {
		if !actual.MemberOf(expected) {
			return fmt.Errorf("spiffeid: unexpected trust domain %q", actual.TrustDomain())
		}
		return nil
	}
}

// MatchIDPrefix returns a Matcher that accepts the expected ID and every ID
// below it: same trust domain, and a path equal to the prefix's path or
// continuing it after a slash (so "/ns/prod" matches "/ns/prod/web" but not
// "/ns/production"). A prefix without a path matches nothing.
func MatchIDPrefix(expected ID) Matcher {
	if expected.Path() == "" {
		return func(ID) error { return errPrefixMissingPath }
	}
	return func(actual ID) error {
		s, p := actual.String(), expected.String()
		if s == p || (strings.HasPrefix(s, p) && s[len(p)] == '/') {
			return nil
		}
		return fmt.Errorf("spiffeid: unexpected ID %q", actual)
	}
}
