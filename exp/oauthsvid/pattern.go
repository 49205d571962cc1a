package oauthsvid

import (
	"context"
	"fmt"
	"strings"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Pattern is the spiffe_id client metadata value (§5.1): a SPIFFE ID that
// the authenticated ID must equal, or, ending in "/*", a prefix of whole
// path segments it must start with.
type Pattern struct {
	id     spiffeid.ID
	prefix bool
}

// ParsePattern parses a spiffe_id value: a SPIFFE ID, or a SPIFFE ID
// followed by "/*". The wildcard may appear only there.
func ParsePattern(s string) (Pattern, error) {
	base, prefix := strings.CutSuffix(s, "/*")
	if strings.Contains(base, "*") {
		return Pattern{}, fmt.Errorf("oauthsvid: spiffe_id pattern %q: a wildcard may only end it, as \"/*\"", s)
	}
	id, err := spiffeid.FromString(base)
	if err != nil {
		return Pattern{}, fmt.Errorf("oauthsvid: spiffe_id pattern %q: %w", s, err)
	}
	return Pattern{id: id, prefix: prefix}, nil
}

// MustParsePattern is ParsePattern that panics on an error, for patterns
// written in the program.
func MustParsePattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Match reports whether id matches the pattern: equal to it, or, for a
// "/*" pattern, in the same trust domain with a path that starts with the
// pattern's path and then "/" (spiffe://example.org/client/* matches
// spiffe://example.org/client/123, not spiffe://example.org/client123 nor
// spiffe://example.org/client).
func (p Pattern) Match(id spiffeid.ID) bool {
	if !p.prefix {
		return id == p.id
	}
	return id.TrustDomain() == p.id.TrustDomain() && strings.HasPrefix(id.Path(), p.id.Path()+"/")
}

// String returns the pattern as written in client metadata.
func (p Pattern) String() string {
	if p.prefix {
		return p.id.String() + "/*"
	}
	return p.id.String()
}

// Clients recognizes the client that an authenticated SPIFFE ID is (§3.1
// rule 5, §3.2 rule 5).
type Clients interface {
	// Recognize returns the client identifier of the client id
	// authenticates, given the client_id of the request ("" when it had
	// none), or an error if id is no registered client, or not that one.
	Recognize(ctx context.Context, id spiffeid.ID, clientID string) (string, error)
}

// Registry is a static set of registered clients: client identifier to
// the spiffe_id pattern its SVIDs must match. A request without client_id
// is taken to name the client whose identifier is its SPIFFE ID.
type Registry map[string]Pattern

// Recognize implements Clients.
func (r Registry) Recognize(_ context.Context, id spiffeid.ID, clientID string) (string, error) {
	if clientID == "" {
		clientID = id.String()
	}
	p, ok := r[clientID]
	if !ok {
		return "", fmt.Errorf("no registered client %q", clientID)
	}
	if !p.Match(id) {
		return "", fmt.Errorf("client %q does not admit %q", clientID, id)
	}
	return clientID, nil
}
