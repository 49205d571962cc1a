package azuremsi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the azure_msi node attestor, SPIRE's.
const Type = "azure_msi"

// DefaultResourceID is the resource, and so the token audience, when none
// is configured: Azure Resource Manager's, SPIRE's default.
const DefaultResourceID = "https://management.azure.com/"

// DefaultKeysURL is where Microsoft Entra ID publishes a tenant's signing
// keys, "{tenant}" standing for the tenant ID.
const DefaultKeysURL = "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"

// DefaultIssuers are the issuers a token of tenant "{tenant}" may name:
// the v1 issuer of managed identities' tokens and the v2 one.
var DefaultIssuers = []string{"https://sts.windows.net/{tenant}/", "https://login.microsoftonline.com/{tenant}/v2.0"}

// DefaultKeysRefresh is how long a tenant's keys are used before they are
// fetched again, when [ServerConfig].KeysRefresh is zero.
const DefaultKeysRefresh = time.Hour

// Leeway is the clock skew allowed when checking a token's times, SPIRE's.
const Leeway = 5 * time.Minute

// minRefetch is the shortest time between two fetches of a tenant's keys
// caused by tokens naming key IDs the server does not know.
const minRefetch = 5 * time.Minute

// maxTenants bounds the tenant allow-list: it is configuration.
const maxTenants = 1024

// TenantConfig configures the nodes of one tenant.
type TenantConfig struct {
	// ResourceID is the resource the tenant's agents ask their tokens for,
	// which the token's audience must be exactly (SPIRE's resource_id).
	// Empty means [DefaultResourceID]. Prefer the application ID URI of an
	// application of your own: a token for Azure Resource Manager is
	// also sent to Resource Manager by whatever else holds the identity.
	ResourceID string

	// ARM, if not nil, looks each VM of the tenant up through Azure
	// Resource Manager with an application's credentials (SPIRE's app_id
	// and app_secret), for the selectors of its network security groups,
	// virtual networks and subnets. Nil means no lookup.
	ARM *ARMConfig
}

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// Tenants are the Microsoft Entra tenants, by tenant ID (a GUID),
	// whose managed identities may attest. Required: every tenant's
	// identities get tokens signed by the same Microsoft keys.
	Tenants map[string]TenantConfig

	// KeysURL is the URL of a tenant's JWKS, "{tenant}" standing for its
	// ID; https, or http on a loopback address only. Empty means
	// [DefaultKeysURL] (national clouds have their own host).
	KeysURL string

	// Issuers are the issuers a token may name, "{tenant}" standing for
	// the tenant's ID, which each must contain. Empty means
	// [DefaultIssuers].
	Issuers []string

	// KeysRefresh is how long fetched keys are used before they are
	// fetched again. Zero means [DefaultKeysRefresh].
	KeysRefresh time.Duration

	// HTTPClient fetches the keys. Nil means a client with a 10-second
	// timeout and the environment's proxy that keeps no connection open.
	HTTPClient *http.Client

	// AllowReattestation lets an identity attest again while its agent's
	// record exists (attest.NodeResult.CanReattest). Off, an identity
	// attests once (trust on first use) until its agent is evicted. A
	// token is a bearer token valid for hours, and anything on the VM may
	// ask for one: turning this on lets whoever saw a token attest as the
	// identity until the token expires.
	AllowReattestation bool
}

// tenant is one allowed tenant.
type tenant struct {
	audience string
	issuers  []string
	keys     *keySource
	arm      *armClient // nil: no lookup
}

// Server is the server side of azure_msi attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use. It fetches each
// tenant's keys when an attestation first needs them, within the
// attestation's context; it starts nothing.
type Server struct {
	tenants  map[string]*tenant
	reattest bool
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits the managed identities of
// c.Tenants. The configuration is copied. It makes no request.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.Tenants) == 0 {
		return nil, errors.New("azuremsi: no tenant: the tenant allow-list is required")
	}
	if len(c.Tenants) > maxTenants {
		return nil, fmt.Errorf("azuremsi: more than %d tenants", maxTenants)
	}
	if c.KeysRefresh < 0 {
		return nil, errors.New("azuremsi: negative keys refresh")
	}
	keysURL := c.KeysURL
	if keysURL == "" {
		keysURL = DefaultKeysURL
	}
	if err := checkKeysURL(keysURL); err != nil {
		return nil, err
	}
	issuers := c.Issuers
	if len(issuers) == 0 {
		issuers = DefaultIssuers
	}
	for _, iss := range issuers {
		if !strings.Contains(iss, "{tenant}") {
			return nil, fmt.Errorf("azuremsi: issuer %q does not contain {tenant}", iss)
		}
	}
	refresh := c.KeysRefresh
	if refresh == 0 {
		refresh = DefaultKeysRefresh
	}
	client := c.HTTPClient
	if client == nil {
		// Keys are fetched about once an hour: no connection is kept.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableKeepAlives = true
		client = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	s := &Server{tenants: map[string]*tenant{}, reattest: c.AllowReattestation}
	for _, id := range slices.Sorted(maps.Keys(c.Tenants)) {
		tc := c.Tenants[id]
		tid := strings.ToLower(id)
		if !guidRE.MatchString(tid) {
			return nil, fmt.Errorf("azuremsi: tenant %q is not a tenant ID (a GUID)", id)
		}
		if s.tenants[tid] != nil {
			return nil, fmt.Errorf("azuremsi: tenant %s is given twice", tid)
		}
		aud := tc.ResourceID
		if aud == "" {
			aud = DefaultResourceID
		}
		t := &tenant{audience: aud, keys: &keySource{
			url:        strings.ReplaceAll(keysURL, "{tenant}", tid),
			client:     client,
			refresh:    refresh,
			minRefetch: minRefetch,
		}}
		for _, iss := range issuers {
			t.issuers = append(t.issuers, strings.ReplaceAll(iss, "{tenant}", tid))
		}
		if tc.ARM != nil {
			var err error
			if t.arm, err = newARMClient(tid, *tc.ARM); err != nil {
				return nil, err
			}
		}
		s.tenants[tid] = t
	}
	return s, nil
}

// checkKeysURL accepts an https URL template with "{tenant}", or an http
// one whose host is a loopback address.
func checkKeysURL(s string) error {
	if !strings.Contains(s, "{tenant}") {
		return fmt.Errorf("azuremsi: keys URL %q does not contain {tenant}", s)
	}
	u, err := url.Parse(strings.ReplaceAll(s, "{tenant}", "t"))
	if err != nil || u.Host == "" {
		return fmt.Errorf("azuremsi: keys URL %q is not a URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("azuremsi: keys URL %q: want https (http on a loopback address only)", s)
}

// Type returns "azure_msi".
func (s *Server) Type() string { return Type }

// Attest verifies the managed identity's access token in payload and
// admits the identity if its tenant is allowed. It sends no challenge.
//
// The token must be a JWS signed with RS256 (no other algorithm, "none"
// and HS256 included) by the key its "kid" names in its tenant's JWKS,
// name one of the tenant's issuers, have exactly the tenant's resource as
// audience, and be within its "nbf" and "exp" (required), give or take
// [Leeway]. The tenant, read from "tid" before the signature is checked
// to pick the keys, must be allowed, and is checked again in the verified
// claims.
//
// The agent ID is spiffe://<td>/spiffekit/agent/azure_msi/<tenant ID>/
// <principal ID> (the token's "sub", the identity's object ID). The agent
// can re-attest only if [ServerConfig].AllowReattestation is set. The
// selectors, of type "azure_msi":
//
//	tenant-id:<tenant ID>
//	principal-id:<principal ID>
//
// and, when the token's xms_mirid names a VM or a VM scale set (a
// system-assigned identity's resource), with SPIRE's names:
//
//	subscription-id:<subscription ID>   SPIRE's
//	resource-group:<group>              SPIRE's azure_imds
//	vm-name:<group>:<VM name>           SPIRE's
//	vmss-name:<group>:<scale set name>
//
// With the tenant's [TenantConfig].ARM, the VM the token names is then
// looked up through Azure Resource Manager, and its network interfaces;
// SPIRE's selectors are added:
//
//	network-security-group:<group>:<NSG name>
//	virtual-network:<group>:<virtual network name>
//	virtual-network-subnet:<group>:<virtual network name>:<subnet name>
//
// (the group is the resource group of the NSG or virtual network).
//
// Errors wrapping [attest.ErrNodeRejected]: a malformed or oversized
// payload or token, a tenant not allowed, an unknown key, a signature that
// does not verify, a wrong issuer or audience, an expired or not yet valid
// token, a subject that is not an object ID; with ARM, a token that names
// no VM, a VM Resource Manager describes as another, or whose
// system-assigned identity is not the token's, a network interface
// described as another, a malformed resource ID. Not a rejection, but
// refused all the same: the tenant's keys could not be fetched (nor were
// any cached); a Resource Manager or token call failed (unreachable,
// refused, timed out, oversized): the selectors are never silently fewer.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, _ attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("azuremsi: no trust domain")
	}
	p, err := parsePayload(payload)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	c, err := s.verify(ctx, p.Token)
	if err != nil {
		return attest.NodeResult{}, err
	}
	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", Type, c.TenantID, c.Subject)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("azuremsi: agent ID: %w", err)
	}
	sels := selectors(c)
	if arm := s.tenants[c.TenantID].arm; arm != nil {
		r, err := ParseResourceID(c.ResourceID)
		if err != nil {
			return attest.NodeResult{}, reject(err, "identity %s: the Resource Manager lookup needs the token's resource to be a VM: %v", c.Subject, err)
		}
		more, err := arm.selectors(ctx, c, r)
		if err != nil {
			return attest.NodeResult{}, err
		}
		sels = attest.NewSelectors(append(sels.Slice(), more...)...)
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   sels,
		CanReattest: s.reattest,
	}, nil
}

// verify checks token and returns its verified claims. Its errors are the
// package's, rejections or not.
func (s *Server) verify(ctx context.Context, token string) (*Claims, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, reject(err, "token is not a JWS signed with RS256: %v", err)
	}
	if len(tok.Headers) != 1 {
		return nil, reject(nil, "token has %d signatures, want 1", len(tok.Headers))
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return nil, reject(nil, "token has no key ID")
	}
	var unverified Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, reject(err, "token's claims do not parse: %v", err)
	}
	t := s.tenants[unverified.TenantID]
	if t == nil {
		return nil, reject(nil, "tenant %s is not allowed", azuremeta.Truncate(unverified.TenantID))
	}
	key, err := t.keys.key(ctx, kid)
	if errors.Is(err, errUnknownKey) {
		return nil, reject(err, "token of tenant %s: %v", unverified.TenantID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("azuremsi: keys of tenant %s: %w", unverified.TenantID, err)
	}
	var c Claims
	if err := tok.Claims(key, &c); err != nil {
		return nil, reject(err, "token of tenant %s: signature does not verify with key %q", unverified.TenantID, kid)
	}
	switch {
	case c.TenantID != unverified.TenantID:
		// The same bytes, parsed twice: cannot happen, checked anyway.
		return nil, reject(nil, "token's tenant changed on verification")
	case !slices.Contains(t.issuers, c.Issuer):
		return nil, reject(nil, "token of tenant %s: issuer %s is not the tenant's", c.TenantID, azuremeta.Truncate(c.Issuer))
	case len(c.Audience) != 1 || c.Audience[0] != t.audience:
		return nil, reject(nil, "token of tenant %s: audience %s, want %s", c.TenantID, azuremeta.Truncate(strings.Join(c.Audience, ",")), t.audience)
	case c.Expiry == nil:
		return nil, reject(nil, "token of tenant %s has no expiry", c.TenantID)
	case !guidRE.MatchString(c.Subject):
		return nil, reject(nil, "token of tenant %s: subject %s is not an object ID", c.TenantID, azuremeta.Truncate(c.Subject))
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, Leeway); err != nil {
		return nil, reject(err, "token of tenant %s, principal %s: %v", c.TenantID, c.Subject, err)
	}
	return &c, nil
}

// selectors returns the selectors of verified claims.
func selectors(c *Claims) attest.Selectors {
	var sels []attest.Selector
	add := func(value string) {
		sel := attest.Selector{Type: Type, Value: value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	add("tenant-id:" + c.TenantID)
	add("principal-id:" + c.Subject)
	if r, err := ParseResourceID(c.ResourceID); err == nil {
		add("subscription-id:" + r.Subscription)
		add("resource-group:" + r.ResourceGroup)
		if r.VMName != "" {
			add("vm-name:" + r.ResourceGroup + ":" + r.VMName)
		}
		if r.ScaleSet != "" {
			add("vmss-name:" + r.ResourceGroup + ":" + r.ScaleSet)
		}
	}
	return attest.NewSelectors(sels...)
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "azuremsi: "+format, args...)
}
