package gcpiit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/agentpath"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the gcp_iit node attestor, SPIRE's.
const Type = "gcp_iit"

// DefaultAudience is the audience agents ask tokens for and servers
// require when not configured: SPIRE's, so that agents and servers of
// either project interoperate.
const DefaultAudience = "spire-gcp-node-attestor"

// DefaultAgentPathTemplate is SPIRE's default agent path template. The
// agent ID is spiffe://<td>/spiffekit/agent followed by the template's
// output.
const DefaultAgentPathTemplate = "/{{ .PluginName }}/{{ .ProjectID }}/{{ .InstanceID }}"

// maxListItems bounds the allow-list: it is configuration.
const maxListItems = 4096

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// ProjectIDs are the projects whose instances may attest (SPIRE's
	// projectid_allow_list). Required: anyone can run an instance in a
	// project of their own, and Google signs its tokens as well as yours.
	ProjectIDs []string

	// Audience is the audience tokens must be issued for. Empty means
	// [DefaultAudience]. A value of the server's own (its trust domain,
	// its address) binds tokens to it, so that a token sent to another
	// server of the default audience cannot be replayed here; the agents
	// must then ask for it.
	Audience string

	// Keys, if not nil, is a document of Google's signing keys (see
	// [ParseKeys]), used instead of fetching KeysURL: for servers that
	// cannot reach Google. Google rotates its keys every few weeks, so the
	// document must be kept current.
	Keys []byte

	// KeysURL is where the keys are fetched, as a JWK Set or Google's
	// object of PEM certificates. Empty means [GoogleKeysURL]. The keys
	// are cached as long as the response's Cache-Control allows (one
	// minute to a day), and fetched again sooner for a key ID not held
	// (at most every 30 s).
	KeysURL string

	// HTTPClient fetches KeysURL. Nil means a client with timeouts that
	// uses the proxy of the environment.
	HTTPClient *http.Client

	// AgentPathTemplate is SPIRE's agent_path_template: a text/template
	// of the agent ID's path below /spiffekit/agent, with the fields
	// PluginName, ProjectID, ProjectNumber, Zone, InstanceID and
	// InstanceName. Its output must start with "/gcp_iit/", so that agents
	// of this attestor never get an ID of another's. Empty means
	// [DefaultAgentPathTemplate].
	AgentPathTemplate string

	// InstanceMetadata, if not nil, has each instance looked up through
	// the Compute API at its attestation (SPIRE's use_instance_metadata):
	// the instance must still exist with the token's ID, and its tags,
	// service accounts and allowed labels and metadata become selectors.
	InstanceMetadata *InstanceMetadataConfig

	// AllowReattestation lets an instance attest again while its agent's
	// record exists (attest.NodeResult.CanReattest). Off (SPIRE's
	// behaviour), an instance attests once (trust on first use) until its
	// agent is evicted. A token is not a secret to the instance's
	// processes and is valid for an hour, so turning this on lets whoever
	// got one attest as the instance in that hour, while the record lives.
	AllowReattestation bool
}

// Server is the server side of gcp_iit attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type Server struct {
	projects map[string]bool
	audience string
	keys     keySource
	path     *agentpath.Template
	reattest bool
	compute  *computeClient // nil: no Compute API lookup
	now      func() time.Time
}

var _ attest.NodeAttestor = (*Server)(nil)

// pathData are the fields of an agent path template.
type pathData struct {
	PluginName    string
	ProjectID     string
	ProjectNumber int64
	Zone          string
	InstanceID    string
	InstanceName  string
}

// NewServer returns a server that admits the instances of c.ProjectIDs.
// It fetches nothing: the keys are fetched at the first attestation.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.ProjectIDs) == 0 {
		return nil, errors.New("gcpiit: no project ID: the project allow-list is required")
	}
	if len(c.ProjectIDs) > maxListItems {
		return nil, fmt.Errorf("gcpiit: the project allow-list has more than %d items", maxListItems)
	}
	s := &Server{projects: map[string]bool{}, audience: c.Audience, reattest: c.AllowReattestation, now: time.Now}
	for _, p := range c.ProjectIDs {
		if !projectRE.MatchString(p) {
			return nil, fmt.Errorf("gcpiit: %q is not a project ID", p)
		}
		s.projects[p] = true
	}
	if s.audience == "" {
		s.audience = DefaultAudience
	}
	if len(s.audience) > 1024 || strings.ContainsAny(s.audience, "\x00\r\n") {
		return nil, errors.New("gcpiit: the audience is longer than 1,024 bytes or has a control character")
	}
	switch {
	case c.Keys != nil && c.KeysURL != "":
		return nil, errors.New("gcpiit: give the keys or their URL, not both")
	case c.Keys != nil:
		keys, err := ParseKeys(c.Keys)
		if err != nil {
			return nil, fmt.Errorf("gcpiit: %w", err)
		}
		s.keys = staticKeys(keys)
	default:
		u := c.KeysURL
		if u == "" {
			u = GoogleKeysURL
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, fmt.Errorf("gcpiit: keys URL %q: want an https:// (or http://) URL", u)
		}
		s.keys = newRemoteKeys(u, c.HTTPClient)
	}
	if c.InstanceMetadata != nil {
		var err error
		if s.compute, err = newComputeClient(*c.InstanceMetadata); err != nil {
			return nil, err
		}
	}
	tmpl := c.AgentPathTemplate
	if tmpl == "" {
		tmpl = DefaultAgentPathTemplate
	}
	var err error
	if s.path, err = agentpath.Parse(Type, tmpl); err != nil {
		return nil, fmt.Errorf("gcpiit: %w", err)
	}
	// Try it on an instance, so that a template that cannot make an ID
	// fails here rather than at each attestation.
	probe := ComputeEngine{ProjectID: "example-project", ProjectNumber: 1, Zone: "us-central1-a", InstanceID: "1", InstanceName: "node"}
	if _, err := s.agentID(spiffeid.RequireTrustDomainFromString("example.org"), probe); err != nil {
		return nil, err
	}
	return s, nil
}

// Type returns "gcp_iit".
func (s *Server) Type() string { return Type }

// Attest verifies the instance identity token in payload and admits its
// instance if its project is allowed. It sends no challenge.
//
// The payload is the token as the metadata server returns it (SPIRE's
// gcp_iit payload). It must be a JWS signed RS256 (no other algorithm is
// accepted, "none" and HMAC included) by the Google key its kid names;
// its issuer Google's ([Issuers]); its audience exactly the server's;
// unexpired, issued (iat) and valid (nbf) within a minute of the server's
// clock; and it must hold google.compute_engine (the full format), whose
// project, zone, instance ID and name must be well formed.
//
// The agent ID is spiffe://<td>/spiffekit/agent/gcp_iit/<project ID>/
// <instance ID> (or the configured template's). The agent can re-attest
// only if [ServerConfig].AllowReattestation is set. The selectors, of
// type "gcp_iit":
//
//	project-id:<project ID>             SPIRE's
//	zone:<zone>                         SPIRE's
//	instance-name:<instance name>       SPIRE's
//	instance-id:<instance ID>
//	project-number:<project number>
//	sa:<service account e-mail>         SPIRE's (there from the Compute API)
//
// sa comes from the token's e-mail, present when Google verified it: the
// service account whose identity endpoint issued the token. With
// [ServerConfig].InstanceMetadata, the instance is read through the
// Compute API and these are added, SPIRE's:
//
//	tag:<network tag>
//	sa:<service account e-mail>
//	label:<key>:<value>                 allowed keys only
//	metadata:<key>:<value>              allowed keys only
//
// The instance must then exist with the token's instance ID (one of the
// same name made since is refused), and an allowed metadata value must
// not be longer than the configured bound.
//
// Errors wrapping [attest.ErrNodeRejected]: a malformed, oversized or
// wrongly signed token, one of an unknown key, issuer or audience,
// expired or not yet valid, without the instance's claims, or of a
// project not allowed, an instance the Compute API does not have. Other
// errors (Google's keys or the instance could not be fetched) mean the
// server could not decide.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, _ attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("gcpiit: no trust domain")
	}
	c, err := s.verify(ctx, payload)
	if err != nil {
		return attest.NodeResult{}, err
	}
	ce := c.Google.ComputeEngine
	if !s.projects[ce.ProjectID] {
		return attest.NodeResult{}, reject(nil, "project %s is not allowed (instance %s)", ce.ProjectID, ce.InstanceID)
	}
	agentID, err := s.agentID(td, ce)
	if err != nil {
		return attest.NodeResult{}, attest.RejectNode(err, "%v", err)
	}
	var extra []attest.Selector
	if s.compute != nil {
		if extra, err = s.compute.selectors(ctx, ce); err != nil {
			return attest.NodeResult{}, err
		}
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   selectors(c, extra...),
		CanReattest: s.reattest,
	}, nil
}

// verify parses and verifies the token, and returns its checked claims.
func (s *Server) verify(ctx context.Context, payload []byte) (*Claims, error) {
	tok, kid, err := parseToken(payload)
	if err != nil {
		return nil, reject(err, "%v", err)
	}
	now := s.now()
	key, err := s.keys.key(ctx, kid, now)
	if errors.Is(err, errUnknownKey) {
		return nil, reject(err, "identity token signed by an %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("gcpiit: %w", err)
	}
	c := new(Claims)
	if err := tok.Claims(key, c); err != nil {
		return nil, reject(err, "identity token's signature does not verify with Google's key %q: %v", truncate(kid), err)
	}
	if err := c.validate(s.audience, now); err != nil {
		return nil, reject(err, "%v", err)
	}
	return c, nil
}

// agentID runs the path template on ce.
func (s *Server) agentID(td spiffeid.TrustDomain, ce ComputeEngine) (spiffeid.ID, error) {
	id, err := s.path.ID(td, pathData{
		PluginName:    Type,
		ProjectID:     ce.ProjectID,
		ProjectNumber: ce.ProjectNumber,
		Zone:          ce.Zone,
		InstanceID:    ce.InstanceID,
		InstanceName:  ce.InstanceName,
	})
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("gcpiit: %w", err)
	}
	return id, nil
}

// selectors returns the selectors of verified claims, and extra.
func selectors(c *Claims, extra ...attest.Selector) attest.Selectors {
	ce := c.Google.ComputeEngine
	sels := extra
	add := func(prefix, value string) {
		if value == "" {
			return
		}
		sel := attest.Selector{Type: Type, Value: prefix + value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	add("project-id:", ce.ProjectID)
	add("zone:", ce.Zone)
	add("instance-name:", ce.InstanceName)
	add("instance-id:", ce.InstanceID)
	if ce.ProjectNumber > 0 {
		add("project-number:", strconv.FormatInt(ce.ProjectNumber, 10))
	}
	if c.EmailVerified {
		add("sa:", c.Email)
	}
	return attest.NewSelectors(sels...)
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "gcpiit: "+format, args...)
}
