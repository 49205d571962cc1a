package awsiid

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/smallstep/pkcs7"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/agentpath"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the aws_iid node attestor, SPIRE's.
const Type = "aws_iid"

// maxListItems bounds the allow-lists: they are configuration.
const maxListItems = 4096

// DefaultAgentPathTemplate is SPIRE's default agent path template. The
// agent ID is spiffe://<td>/spiffekit/agent followed by the template's
// output.
const DefaultAgentPathTemplate = "/{{ .PluginName }}/{{ .AccountID }}/{{ .Region }}/{{ .InstanceID }}"

// ServerConfig configures [NewServer].
type ServerConfig struct {
	// AccountIDs are the AWS accounts whose instances may attest. Required:
	// anyone can run an instance in an account of their own, and its
	// document is signed by AWS as well as yours.
	AccountIDs []string

	// Regions, if not empty, are the only regions whose instances may
	// attest. Empty means every region the server has certificates for.
	Regions []string

	// Partition, if not empty, keeps only the regions of that partition
	// ("aws", "aws-cn", "aws-us-gov"; see [PartitionOf]).
	Partition string

	// RSA2048Certificates verify the PKCS #7 form (the "rsa2048" field),
	// by region. Nil means [AWSCertificates]; give a map of your own (it
	// may start from AWSCertificates()) to add or replace regions.
	RSA2048Certificates map[string][]*x509.Certificate

	// SignatureCertificates verify the RSA-SHA256 form (the "signature"
	// field), by region: AWS's "RSA" certificates of each region, from
	// AWS's documentation. Nil or empty: the form is not accepted, and a
	// payload must carry the PKCS #7 form.
	SignatureCertificates map[string][]*x509.Certificate

	// AllowReattestation lets an instance attest again while its agent's
	// record exists (attest.NodeResult.CanReattest). Off, an instance
	// attests once (trust on first use) until its agent is evicted. The
	// document is not a secret (any process on the instance may read it,
	// and it never changes), so turning this on lets whoever saw it once
	// attest as the instance for as long as its record lives.
	AllowReattestation bool

	// AgentPathTemplate is SPIRE's agent_path_template: a text/template
	// of the agent ID's path below /spiffekit/agent, with the fields of
	// the instance identity document ([Document]: AccountID, Region,
	// AvailabilityZone, InstanceID, InstanceType, ImageID, Architecture,
	// PrivateIP, Version), PluginName, and Tags, the instance's tags by
	// key (with Lookup only; {{ index .Tags "name" }}). A tag or field the
	// instance does not have refuses its attestation. The output must
	// start with "/aws_iid/", so that agents of this attestor never get an
	// ID of another's. Empty means [DefaultAgentPathTemplate].
	AgentPathTemplate string

	// Lookup, if not nil, looks each instance up through the EC2 and IAM
	// APIs, for more selectors and checks (see [LookupConfig]). Nil means
	// the server admits from the signed document alone and calls no AWS
	// API.
	Lookup *LookupConfig
}

// Server is the server side of aws_iid attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type Server struct {
	accounts  map[string]bool
	regions   map[string]bool // nil: any
	rsa2048   map[string][]*x509.Certificate
	signature map[string][]*x509.Certificate
	reattest  bool
	lookup    *lookup // nil: off
	path      *agentpath.Template
}

// pathData are the fields of an agent path template: SPIRE's.
type pathData struct {
	Document
	PluginName string
	Tags       map[string]string
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits the instances of c.AccountIDs in
// the regions c allows. The configuration is copied.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.AccountIDs) == 0 {
		return nil, errors.New("awsiid: no account ID: the account allow-list is required")
	}
	if len(c.AccountIDs) > maxListItems || len(c.Regions) > maxListItems {
		return nil, fmt.Errorf("awsiid: an allow-list has more than %d items", maxListItems)
	}
	s := &Server{accounts: map[string]bool{}, reattest: c.AllowReattestation}
	for _, a := range c.AccountIDs {
		if !accountRE.MatchString(a) {
			return nil, fmt.Errorf("awsiid: account ID %q is not 12 digits", a)
		}
		s.accounts[a] = true
	}
	switch c.Partition {
	case "", PartitionAWS, PartitionChina, PartitionGovCloud:
	default:
		return nil, fmt.Errorf("awsiid: unknown partition %q (want %s, %s or %s)", c.Partition, PartitionAWS, PartitionChina, PartitionGovCloud)
	}
	if len(c.Regions) > 0 {
		s.regions = map[string]bool{}
		for _, r := range c.Regions {
			if !regionRE.MatchString(r) {
				return nil, fmt.Errorf("awsiid: %q is not a region name", r)
			}
			if c.Partition != "" && PartitionOf(r) != c.Partition {
				return nil, fmt.Errorf("awsiid: region %s is not in partition %s", r, c.Partition)
			}
			s.regions[r] = true
		}
	}
	keep := func(region string) bool {
		return (c.Partition == "" || PartitionOf(region) == c.Partition) && (s.regions == nil || s.regions[region])
	}
	rsa2048 := c.RSA2048Certificates
	if rsa2048 == nil {
		rsa2048 = AWSCertificates()
	}
	var err error
	if s.rsa2048, err = checkCertificates("awsiid: RSA-2048 certificates", rsa2048, keep); err != nil {
		return nil, err
	}
	if s.signature, err = checkCertificates("awsiid: signature certificates", c.SignatureCertificates, keep); err != nil {
		return nil, err
	}
	for r := range s.regions {
		if s.rsa2048[r] == nil && s.signature[r] == nil {
			return nil, fmt.Errorf("awsiid: allowed region %s has no certificate", r)
		}
	}
	if len(s.rsa2048) == 0 && len(s.signature) == 0 {
		return nil, errors.New("awsiid: no certificate for any allowed region")
	}
	if c.Lookup != nil {
		if s.lookup, err = newLookup(*c.Lookup); err != nil {
			return nil, err
		}
	}
	tmpl := c.AgentPathTemplate
	if tmpl == "" {
		tmpl = DefaultAgentPathTemplate
	}
	if s.path, err = agentpath.Parse(Type, tmpl); err != nil {
		return nil, fmt.Errorf("awsiid: %w", err)
	}
	// Try it on an instance, so that a template that cannot make an ID
	// fails here rather than at each attestation. The tags are known only
	// from the lookups: a template that reads them needs the lookups, and
	// is tried on each instance.
	usesTags := strings.Contains(tmpl, "Tags")
	if usesTags && c.Lookup == nil {
		return nil, errors.New("awsiid: agent path template: it reads the instance's tags, which only the EC2 lookups read, and they are off")
	}
	probe := pathData{PluginName: Type, Document: Document{AccountID: "123456789012", Region: "us-east-1", AvailabilityZone: "us-east-1a",
		InstanceID: "i-0123456789abcdef0", InstanceType: "m5.large", ImageID: "ami-0123456789abcdef0", Architecture: "x86_64",
		PrivateIP: "10.0.0.1", Version: "2017-09-30"}}
	if _, err := s.path.ID(spiffeid.RequireTrustDomainFromString("example.org"), probe); err != nil && !usesTags {
		return nil, fmt.Errorf("awsiid: %w", err)
	}
	return s, nil
}

// Type returns "aws_iid".
func (s *Server) Type() string { return Type }

// Attest verifies the instance identity document in payload and admits
// its instance if its account and region are allowed. It sends no
// challenge.
//
// The document is verified in one of two forms. If the payload has the
// PKCS #7 form (rsa2048) and the server has RSA-2048 certificates for the
// document's region, the PKCS #7 message must hold one signer, with
// SHA-256, whose certificate is one of that region's (the certificates in
// the message are ignored), and the document is the message's content:
// the payload's "document" field, if given, must be that content byte for
// byte. Otherwise the "signature" field must be an RSA PKCS #1 v1.5
// SHA-256 signature of the "document" field by a key of the region's
// signature certificates. Either way, everything the result says comes
// from the bytes the signature covers.
//
// The agent ID is spiffe://<td>/spiffekit/agent/aws_iid/<account>/
// <region>/<instance ID>, or what [ServerConfig].AgentPathTemplate makes
// of the instance (an instance it cannot make a path of is refused). The
// agent can re-attest only if
// [ServerConfig].AllowReattestation is set. The selectors, of type
// "aws_iid", are SPIRE's where SPIRE has them:
//
//	account:<account ID>
//	region:<region>                     SPIRE's
//	az:<availability zone>              SPIRE's
//	instance:id:<instance ID>           SPIRE's
//	image:id:<AMI ID>                   SPIRE's
//	instance:type:<instance type>
//
// With [ServerConfig].Lookup, the instance is then looked up through the
// EC2 API (DescribeInstances) in its region, and, if it has an instance
// profile, its roles through IAM (GetInstanceProfile); these selectors,
// SPIRE's, are added:
//
//	tag:<key>:<value>                   each tag of the instance
//	sg:id:<security group ID>           each security group
//	sg:name:<security group name>
//	iamrole:<role ARN>                  each role of its instance profile
//
// A value a selector cannot hold (empty, a NUL byte, longer than
// [attest.MaxValueLength]) is left out.
//
// Errors wrapping [attest.ErrNodeRejected]: a malformed or oversized
// payload or document; no certificate for the region; a signature that
// does not verify; a PKCS #7 message without content or with a content
// other than the document field; an account or region not allowed; with
// Lookup, an instance EC2 does not have or that is neither pending nor
// running, a description of another instance or account, a root volume
// attached after launch (unless SkipBlockDevice), an instance profile IAM
// describes as another. An API call that fails (unreachable, refused,
// timed out, an oversized or malformed response) refuses the attestation
// too, with an error that does not wrap ErrNodeRejected: the selectors are
// never silently fewer.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, _ attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("awsiid: no trust domain")
	}
	p, err := parsePayload(payload)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	doc, err := s.verify(p)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	if !s.accounts[doc.AccountID] {
		return attest.NodeResult{}, reject(nil, "account %s is not allowed (instance %s)", doc.AccountID, doc.InstanceID)
	}
	if s.regions != nil && !s.regions[doc.Region] {
		return attest.NodeResult{}, reject(nil, "region %s is not allowed (instance %s)", doc.Region, doc.InstanceID)
	}
	sels := selectors(doc)
	var tags map[string]string
	if s.lookup != nil {
		more, t, err := s.lookup.selectors(ctx, doc)
		if err != nil {
			return attest.NodeResult{}, err
		}
		sels, tags = attest.NewSelectors(append(sels.Slice(), more...)...), t
	}
	agentID, err := s.path.ID(td, pathData{Document: doc, PluginName: Type, Tags: tags})
	if err != nil {
		return attest.NodeResult{}, reject(err, "instance %s: %v", doc.InstanceID, err)
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   sels,
		CanReattest: s.reattest,
	}, nil
}

// verify verifies p's signature and returns the document it covers.
func (s *Server) verify(p Payload) (Document, error) {
	if p.RSA2048 != "" {
		p7, doc, err := parsePKCS7(p.RSA2048)
		if err != nil {
			return Document{}, err
		}
		if certs := s.rsa2048[doc.Region]; certs != nil {
			if err := verifyPKCS7(p7, certs); err != nil {
				return Document{}, fmt.Errorf("PKCS #7 signature of the document of instance %s in %s: %w", doc.InstanceID, doc.Region, err)
			}
			// What was verified is p7.Content, and doc was parsed from it.
			// A document field that says something else is refused, not
			// ignored: it is a forgery, or a broken agent.
			if p.Document != "" && subtle.ConstantTimeCompare([]byte(p.Document), p7.Content) != 1 {
				return Document{}, errors.New("the document field differs from the document the PKCS #7 signature covers")
			}
			return doc, nil
		}
		if p.Signature == "" || p.Document == "" {
			return Document{}, fmt.Errorf("%w for region %s", errNoCertificate, doc.Region)
		}
	}
	if p.Document == "" {
		return Document{}, errors.New("payload has a signature but no document")
	}
	doc, err := parseDocument([]byte(p.Document))
	if err != nil {
		return Document{}, err
	}
	certs := s.signature[doc.Region]
	if certs == nil {
		return Document{}, fmt.Errorf("%w for the signature form in region %s", errNoCertificate, doc.Region)
	}
	if p.Signature == "" {
		return Document{}, errors.New("payload has no signature for its document")
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil {
		return Document{}, fmt.Errorf("signature is not base64: %w", err)
	}
	digest := sha256.Sum256([]byte(p.Document))
	for _, c := range certs {
		if rsa.VerifyPKCS1v15(c.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) == nil {
			return doc, nil
		}
	}
	return Document{}, fmt.Errorf("signature of the document of instance %s does not verify with the certificates of %s", doc.InstanceID, doc.Region)
}

// parsePKCS7 decodes the base64 PKCS #7 message and parses the document it
// holds, not yet verified.
func parsePKCS7(b64 string) (*pkcs7.PKCS7, Document, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, Document{}, fmt.Errorf("rsa2048 is not base64: %w", err)
	}
	p7, err := parsePKCS7DER(der)
	if err != nil {
		return nil, Document{}, err
	}
	if len(p7.Content) == 0 {
		return nil, Document{}, errors.New("the PKCS #7 message holds no document")
	}
	doc, err := parseDocument(p7.Content)
	if err != nil {
		return nil, Document{}, fmt.Errorf("PKCS #7 content: %w", err)
	}
	return p7, doc, nil
}

// parsePKCS7DER parses a PKCS #7 signed-data message, turning a panic of
// the parser on hostile input into an error.
func parsePKCS7DER(der []byte) (p7 *pkcs7.PKCS7, err error) {
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

// verifyPKCS7 checks that p7 has one signer, using SHA-256, and that its
// signature verifies with one of certs. The certificates the message
// carries are dropped first: the signer is looked up among certs only, so
// that a message signed by a key of the sender's, with its certificate in
// the message, names no signer here.
func verifyPKCS7(p7 *pkcs7.PKCS7, certs []*x509.Certificate) error {
	if len(p7.Signers) != 1 {
		return fmt.Errorf("the message has %d signers, want 1", len(p7.Signers))
	}
	if alg := p7.Signers[0].DigestAlgorithm.Algorithm; !alg.Equal(pkcs7.OIDDigestAlgorithmSHA256) {
		return fmt.Errorf("the message's digest algorithm is %v, want SHA-256", alg)
	}
	p7.Certificates = slices.Clone(certs)
	if p7.GetOnlySigner() == nil {
		return errors.New("the signer is none of the region's certificates")
	}
	return verifySafely(p7)
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

// selectors returns the selectors of a verified document.
func selectors(doc Document) attest.Selectors {
	var sels []attest.Selector
	add := func(prefix, value string) {
		if value == "" {
			return
		}
		sel := attest.Selector{Type: Type, Value: prefix + value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	add("account:", doc.AccountID)
	add("region:", doc.Region)
	add("az:", doc.AvailabilityZone)
	add("instance:id:", doc.InstanceID)
	add("image:id:", doc.ImageID)
	add("instance:type:", doc.InstanceType)
	return attest.NewSelectors(sels...)
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "awsiid: "+format, args...)
}
