package gcpiit

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenSize bounds an identity token, well above what Google's
// metadata server issues (about 1,000 bytes in the full format).
const MaxTokenSize = 16 << 10

// Issuers are the "iss" values of Google's identity tokens: Google's
// OpenID configuration names the first, and Google's libraries accept
// both.
var Issuers = []string{"https://accounts.google.com", "accounts.google.com"}

// leeway is the clock skew allowed between the server and Google on
// exp, iat and nbf.
const leeway = time.Minute

// Claims are the claims of a Compute Engine instance identity token that
// this package reads.
type Claims struct {
	jwt.Claims

	// AuthorizedParty ("azp") and Email are of the service account whose
	// identity endpoint issued the token; EmailVerified says Google
	// vouches for Email.
	AuthorizedParty string `json:"azp"`
	Email           string `json:"email"`
	EmailVerified   bool   `json:"email_verified"`

	// Google holds google.compute_engine, present in tokens of the full
	// format.
	Google struct {
		ComputeEngine ComputeEngine `json:"compute_engine"`
	} `json:"google"`
}

// ComputeEngine is the google.compute_engine claim: the instance the
// token was issued on.
type ComputeEngine struct {
	ProjectID                 string   `json:"project_id"`
	ProjectNumber             int64    `json:"project_number"`
	Zone                      string   `json:"zone"`
	InstanceID                string   `json:"instance_id"`
	InstanceName              string   `json:"instance_name"`
	InstanceCreationTimestamp int64    `json:"instance_creation_timestamp"`
	LicenseID                 []string `json:"license_id"`
}

var (
	// projectRE: project IDs are 6 to 30 lower-case letters, digits and
	// hyphens, starting with a letter and not ending with a hyphen.
	// Domain-scoped projects ("example.com:project") have a colon, which
	// no SPIFFE ID path may hold: they are refused.
	projectRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// zoneRE: "us-central1-a", "europe-west4-b".
	zoneRE = regexp.MustCompile(`^[a-z]+(-[a-z]+[0-9]*)+-[a-z]$`)
	// instanceIDRE: a decimal unsigned 64-bit number.
	instanceIDRE = regexp.MustCompile(`^[0-9]{1,20}$`)
	// instanceNameRE: RFC 1035 labels, as Compute Engine requires.
	instanceNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
)

// parseToken parses a compact JWS, allowing RS256 only, and returns it
// with its key ID, not yet verified.
func parseToken(payload []byte) (*jwt.JSONWebToken, string, error) {
	switch {
	case len(payload) == 0:
		return nil, "", errors.New("payload is empty")
	case len(payload) > MaxTokenSize:
		return nil, "", fmt.Errorf("identity token is larger than %d bytes", MaxTokenSize)
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(string(payload)), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, "", fmt.Errorf("identity token does not parse as an RS256 JWT: %w", err)
	}
	if len(tok.Headers) != 1 {
		return nil, "", fmt.Errorf("identity token has %d signatures, want 1", len(tok.Headers))
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return nil, "", errors.New("identity token names no key (kid)")
	}
	return tok, kid, nil
}

// validate checks the verified claims: issuer, audience, times, and the
// instance's fields.
func (c *Claims) validate(audience string, now time.Time) error {
	if !slices.Contains(Issuers, c.Issuer) {
		return fmt.Errorf("identity token's issuer %q is not Google's", truncate(c.Issuer))
	}
	if len(c.Audience) != 1 || c.Audience[0] != audience {
		return fmt.Errorf("identity token's audience %q is not %q", truncate(strings.Join(c.Audience, ",")), audience)
	}
	switch {
	case c.Expiry == nil:
		return errors.New("identity token has no expiry")
	case c.IssuedAt == nil:
		return errors.New("identity token has no issue time")
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Time: now}, leeway); err != nil {
		return fmt.Errorf("identity token: %w (now %s, exp %s, iat %s)", err, now.UTC().Format(time.RFC3339),
			c.Expiry.Time().UTC().Format(time.RFC3339), c.IssuedAt.Time().UTC().Format(time.RFC3339))
	}
	if !c.Expiry.Time().After(c.IssuedAt.Time()) {
		return errors.New("identity token expires before it is issued")
	}
	return c.Google.ComputeEngine.validate()
}

// validate checks the fields the agent ID and selectors are made of.
func (ce *ComputeEngine) validate() error {
	if ce.ProjectID == "" && ce.InstanceID == "" {
		return errors.New("identity token has no google.compute_engine claims (an instance's token of the full format is needed)")
	}
	switch {
	case !projectRE.MatchString(ce.ProjectID):
		return fmt.Errorf("identity token's project ID %q is not a project ID (domain-scoped projects are not supported)", truncate(ce.ProjectID))
	case !zoneRE.MatchString(ce.Zone):
		return fmt.Errorf("identity token's zone %q is not a zone name", truncate(ce.Zone))
	case !instanceIDRE.MatchString(ce.InstanceID):
		return fmt.Errorf("identity token's instance ID %q is not a number", truncate(ce.InstanceID))
	case !instanceNameRE.MatchString(ce.InstanceName):
		return fmt.Errorf("identity token's instance name %q is not an instance name", truncate(ce.InstanceName))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
