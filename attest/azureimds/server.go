package azureimds

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the azure_imds node attestor, SPIRE's.
const Type = "azure_imds"

// DefaultSignerNames are the names the certificate that signs attested
// documents holds, in Azure's public cloud.
var DefaultSignerNames = []string{"metadata.azure.com"}

// DefaultIssuerHosts are the hosts whose CA Issuers URLs may be fetched for
// the signer's intermediate certificate.
var DefaultIssuerHosts = []string{"www.microsoft.com"}

// Leeway is the clock skew allowed on the document's timestamps.
const Leeway = 5 * time.Minute

// maxFirstPayload bounds the agent's first message, which says nothing.
const maxFirstPayload = 1 << 10

// maxListItems bounds the allow-lists: they are configuration.
const maxListItems = 4096

// TenantConfig configures the nodes of one tenant.
type TenantConfig struct {
	// Subscriptions are the subscriptions whose VMs may attest under the
	// tenant (SPIRE's allowed_subscriptions). Required: the document does
	// not name its tenant, only its subscription, and a subscription
	// belongs to one tenant.
	Subscriptions []string
}

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// Tenants are the tenants, by the name their agents give (a tenant ID
	// or a domain such as contoso.onmicrosoft.com, SPIRE's tenant_domain),
	// whose VMs may attest. Required.
	Tenants map[string]TenantConfig

	// Roots are the roots the signer's certificate must chain to. Nil
	// means [AzureRoots].
	Roots []*x509.Certificate

	// Intermediates are intermediate certificates to chain through, beside
	// those the message carries and those fetched from the signer's CA
	// Issuers URL.
	Intermediates []*x509.Certificate

	// IssuerHosts are the hosts the signer's CA Issuers URL may name for
	// its intermediate to be fetched. Nil means [DefaultIssuerHosts];
	// empty, nothing is fetched.
	IssuerHosts []string

	// SignerNames are the DNS names of which the signer's certificate must
	// hold one. Nil means [DefaultSignerNames]; national clouds have
	// their own.
	SignerNames []string

	// HTTPClient fetches intermediates. Nil means a client with a
	// 10-second timeout that keeps no connection open.
	HTTPClient *http.Client

	// AllowReattestation lets a VM attest again while its agent's record
	// exists (attest.NodeResult.CanReattest). Off, a VM attests once (trust
	// on first use) until its agent is evicted.
	AllowReattestation bool
}

// Server is the server side of azure_imds attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use; it starts
// nothing.
type Server struct {
	tenants       map[string]map[string]bool
	roots         *x509.CertPool
	intermediates []*x509.Certificate
	fetcher       *intermediates
	names         []string
	reattest      bool
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits the VMs of the subscriptions of
// c.Tenants. The configuration is copied. It makes no request.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.Tenants) == 0 {
		return nil, errors.New("azureimds: no tenant: the tenant allow-list is required")
	}
	if len(c.Tenants) > maxListItems {
		return nil, fmt.Errorf("azureimds: more than %d tenants", maxListItems)
	}
	s := &Server{tenants: map[string]map[string]bool{}, reattest: c.AllowReattestation}
	for _, name := range slices.Sorted(maps.Keys(c.Tenants)) {
		t := c.Tenants[name]
		if !tenantRE.MatchString(name) {
			return nil, fmt.Errorf("azureimds: tenant %q is not a tenant ID or domain in lower case", name)
		}
		if len(t.Subscriptions) == 0 {
			return nil, fmt.Errorf("azureimds: tenant %s has no subscription: its allow-list is required", name)
		}
		if len(t.Subscriptions) > maxListItems {
			return nil, fmt.Errorf("azureimds: tenant %s has more than %d subscriptions", name, maxListItems)
		}
		subs := map[string]bool{}
		for _, sub := range t.Subscriptions {
			if !guidRE.MatchString(sub) {
				return nil, fmt.Errorf("azureimds: subscription %q of tenant %s is not a subscription ID in lower case", sub, name)
			}
			subs[sub] = true
		}
		s.tenants[name] = subs
	}
	roots := c.Roots
	if roots == nil {
		roots = AzureRoots()
	}
	if len(roots) == 0 {
		return nil, errors.New("azureimds: no root certificate")
	}
	s.roots = x509.NewCertPool()
	for i, r := range roots {
		if r == nil {
			return nil, fmt.Errorf("azureimds: root %d is nil", i)
		}
		s.roots.AddCert(r)
	}
	for i, c := range c.Intermediates {
		if c == nil {
			return nil, fmt.Errorf("azureimds: intermediate %d is nil", i)
		}
	}
	s.intermediates = slices.Clone(c.Intermediates)
	s.names = slices.Clone(c.SignerNames)
	if s.names == nil {
		s.names = DefaultSignerNames
	}
	if len(s.names) == 0 {
		return nil, errors.New("azureimds: no signer name")
	}
	hosts := c.IssuerHosts
	if hosts == nil {
		hosts = DefaultIssuerHosts
	}
	client := c.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DisableKeepAlives = true
		client = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	s.fetcher = &intermediates{hosts: slices.Clone(hosts), client: client, certs: map[string]*x509.Certificate{}}
	return s, nil
}

// Type returns "azure_imds".
func (s *Server) Type() string { return Type }

// Attest sends the agent a fresh nonce, verifies the attested document it
// answers with, and admits the VM if its subscription is allowed for the
// tenant the agent names.
//
// The document's PKCS #7 message must have one signer, with SHA-256, -384
// or -512. The signer's certificate is resolved first, as the signature
// is checked: the certificate of the message whose issuer and serial the
// signer info names, not the first of the message. Only then is that
// certificate checked: it must chain to the roots (through the message's
// other certificates, the configured intermediates, or the one its CA
// Issuers URL names on an allowed host) and name one of the signer names;
// and the message is verified with it alone. The signed content must
// carry the nonce, a VM ID and a subscription ID, and be within its
// timestamps give or take [Leeway].
//
// The agent ID is spiffe://<td>/spiffekit/agent/azure_imds/<tenant>/
// <subscription ID>/<VM ID> (SPIRE's path below /spiffekit). The agent can
// re-attest only if [ServerConfig].AllowReattestation is set. The
// selectors, of type "azure_imds":
//
//	tenant:<tenant, as configured>
//	subscription-id:<subscription ID>   SPIRE's
//	vm-id:<VM ID>
//
// Errors wrapping [attest.ErrNodeRejected]: an oversized first message; a
// malformed or oversized answer; a tenant or subscription not allowed; a
// message that does not parse, has no content, another number of signers,
// a weak digest, a signer whose certificate is missing, does not chain to
// the roots or names another host, a signature that does not verify; a
// nonce other than the one sent; an expired document.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("azureimds: no trust domain")
	}
	if challenge == nil {
		return attest.NodeResult{}, errors.New("azureimds: no challenger: azure_imds needs a challenge")
	}
	if len(payload) > maxFirstPayload {
		return attest.NodeResult{}, reject(nil, "first message is larger than %d bytes", maxFirstPayload)
	}
	nonce := rand.Text() // 26 characters of base32: letters and digits
	answer, err := challenge(ctx, []byte(nonce))
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("azureimds: challenge: %w", err)
	}
	r, err := parseResponse(answer)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	subs := s.tenants[r.Metadata.AgentDomain]
	if subs == nil {
		return attest.NodeResult{}, reject(nil, "tenant %s is not allowed", azuremeta.Truncate(r.Metadata.AgentDomain))
	}
	c, err := s.verify(ctx, r.Document.Signature)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	if subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return attest.NodeResult{}, reject(nil, "document of VM %s is for nonce %s, not the one sent", c.VMID, azuremeta.Truncate(c.Nonce))
	}
	if !subs[c.SubscriptionID] {
		return attest.NodeResult{}, reject(nil, "subscription %s is not allowed for tenant %s (VM %s)", c.SubscriptionID, r.Metadata.AgentDomain, c.VMID)
	}
	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", Type, r.Metadata.AgentDomain, c.SubscriptionID, c.VMID)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("azureimds: agent ID: %w", err)
	}
	return attest.NodeResult{
		AgentID: agentID,
		Selectors: attest.NewSelectors(
			attest.Selector{Type: Type, Value: "tenant:" + r.Metadata.AgentDomain},
			attest.Selector{Type: Type, Value: "subscription-id:" + c.SubscriptionID},
			attest.Selector{Type: Type, Value: "vm-id:" + c.VMID},
		),
		CanReattest: s.reattest,
	}, nil
}

// verify verifies the base64 PKCS #7 message and returns the content it
// signs.
func (s *Server) verify(ctx context.Context, b64 string) (Content, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return Content{}, fmt.Errorf("signature is not base64: %w", err)
	}
	p7, err := parsePKCS7(der)
	if err != nil {
		return Content{}, err
	}
	if len(p7.Content) == 0 {
		return Content{}, errors.New("the PKCS #7 message holds no document")
	}
	if len(p7.Signers) != 1 {
		return Content{}, fmt.Errorf("the message has %d signers, want 1", len(p7.Signers))
	}
	switch alg := p7.Signers[0].DigestAlgorithm.Algorithm; {
	case alg.Equal(pkcs7.OIDDigestAlgorithmSHA256), alg.Equal(pkcs7.OIDDigestAlgorithmSHA384), alg.Equal(pkcs7.OIDDigestAlgorithmSHA512):
	default:
		return Content{}, fmt.Errorf("the message's digest algorithm is %v, want SHA-256, -384 or -512", alg)
	}
	// The signer: the certificate the signer info names by issuer and
	// serial, which is the one the signature is checked with. Checking
	// another (the first of the message) is the bug SPIRE fixed in 1.15.2.
	signer := p7.GetOnlySigner()
	if signer == nil {
		return Content{}, errors.New("the message does not carry its signer's certificate")
	}
	pool := x509.NewCertPool()
	for _, c := range s.intermediates {
		pool.AddCert(c)
	}
	for _, c := range p7.Certificates {
		if c != signer {
			pool.AddCert(c)
		}
	}
	fetched, fetchErr := s.fetcher.fetch(ctx, signer)
	for _, c := range fetched {
		pool.AddCert(c)
	}
	now := time.Now()
	if _, err := signer.Verify(x509.VerifyOptions{
		Roots: s.roots, Intermediates: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		if fetchErr != nil {
			err = fmt.Errorf("%w (fetching its intermediate: %v)", err, fetchErr)
		}
		return Content{}, fmt.Errorf("the signer's certificate (%s) does not chain to the roots: %w", azuremeta.Truncate(signer.Subject.String()), err)
	}
	if !slices.ContainsFunc(s.names, func(n string) bool { return signer.VerifyHostname(n) == nil }) {
		return Content{}, fmt.Errorf("the signer's certificate (%s) names none of %s", azuremeta.Truncate(signer.Subject.String()), strings.Join(s.names, ", "))
	}
	// Verified with that certificate alone.
	p7.Certificates = []*x509.Certificate{signer}
	if err := verifySafely(p7); err != nil {
		return Content{}, fmt.Errorf("the signature does not verify: %w", err)
	}
	return parseContent(p7.Content, now, Leeway)
}

// parsePKCS7 parses a PKCS #7 signed-data message, turning a panic of the
// parser on hostile input into an error.
func parsePKCS7(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, fmt.Errorf("the PKCS #7 message does not parse (%v)", r)
		}
	}()
	p7, err = pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("the PKCS #7 message does not parse: %w", err)
	}
	return p7, nil
}

// verifySafely runs p7.Verify, turning a panic into an error.
func verifySafely(p7 *pkcs7.PKCS7) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("verification failed (%v)", r)
		}
	}()
	return p7.Verify()
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "azureimds: "+format, args...)
}
