package awsiid

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/imdstest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// certsOf returns the certificate map of one region.
func certsOf(region string, s ...*signer) map[string][]*x509.Certificate {
	var certs []*x509.Certificate
	for _, x := range s {
		certs = append(certs, x.Cert)
	}
	return map[string][]*x509.Certificate{region: certs}
}

func newTestServer(t *testing.T, c ServerConfig) *Server {
	t.Helper()
	if c.AccountIDs == nil {
		c.AccountIDs = []string{testAccount}
	}
	s, err := NewServer(c)
	require.NoError(t, err)
	return s
}

func payloadOf(t testing.TB, p Payload) []byte {
	t.Helper()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return b
}

func requireRejected(t *testing.T, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	require.Contains(t, err.Error(), contains)
}

func TestAttestThroughIMDSv2(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the service's cleanup
	aws := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	imds := startIMDS(t, instanceData(t, aws, doc))

	client, err := NewClient(ClientConfig{Endpoint: imds.URL})
	require.NoError(t, err)
	require.Equal(t, Type, client.Type())
	payload, err := client.Payload(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 3, imds.Gets(), "document, signature and rsa2048, each with the session token")
	require.Zero(t, imds.Tokenless(), "no request without a token (IMDSv1)")

	var p Payload
	require.NoError(t, json.Unmarshal(payload, &p))
	require.Equal(t, doc, p.Document)

	srv := newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, aws)})
	require.Equal(t, Type, srv.Type())
	res, err := srv.Attest(t.Context(), td, payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.String())
	require.False(t, res.CanReattest)
	want := attest.NewSelectors(
		attest.Selector{Type: Type, Value: "account:123456789012"},
		attest.Selector{Type: Type, Value: "region:us-east-1"},
		attest.Selector{Type: Type, Value: "az:us-east-1a"},
		attest.Selector{Type: Type, Value: "instance:id:i-0123456789abcdef0"},
		attest.Selector{Type: Type, Value: "image:id:ami-0abcdef1234567890"},
		attest.Selector{Type: Type, Value: "instance:type:m5.large"},
	)
	require.True(t, want.Equal(res.Selectors), "got %v", res.Selectors)

	_, err = client.Respond(t.Context(), []byte("x"))
	require.Error(t, err)
}

func TestAttestSignatureForm(t *testing.T) {
	aws := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	srv := newTestServer(t, ServerConfig{
		RSA2048Certificates:   map[string][]*x509.Certificate{},
		SignatureCertificates: certsOf(testRegion, newSigner(t, 2, 9), aws), // rotation: the second one verifies
		AllowReattestation:    true,
	})
	res, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, Signature: aws.Signature(t, doc)}), nil)
	require.NoError(t, err)
	require.True(t, res.CanReattest)
	require.Equal(t, "/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.Path())

	// A PKCS #7 form for a region without RSA-2048 certificate falls back
	// to the signature form.
	res, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, Signature: aws.Signature(t, doc), RSA2048: aws.PKCS7(t, doc)}), nil)
	require.NoError(t, err)
	require.Equal(t, "/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.Path())

	// The document changed after signing.
	changed := strings.Replace(doc, testInstance, "i-0fedcba9876543210", 1)
	_, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: changed, Signature: aws.Signature(t, doc)}), nil)
	requireRejected(t, err, "does not verify")
}

// TestAttestPrefersPKCS7 checks that when the PKCS #7 form is verified,
// the signature form is not what admits: a valid RSA-SHA256 signature does
// not rescue a PKCS #7 message that fails.
func TestAttestPrefersPKCS7(t *testing.T) {
	aws := newSigner(t, 0, 1)
	other := newSigner(t, 1, 1)
	doc := document(testAccount, testRegion, testInstance)
	srv := newTestServer(t, ServerConfig{
		RSA2048Certificates:   certsOf(testRegion, aws),
		SignatureCertificates: certsOf(testRegion, aws),
	})
	_, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, Signature: aws.Signature(t, doc), RSA2048: other.PKCS7(t, doc)}), nil)
	requireRejected(t, err, "PKCS #7 signature")
}

// TestAttackAnotherKey: documents signed by a key that is not AWS's are
// refused, in either form, even when the message carries a certificate
// with the issuer name and serial number of AWS's.
func TestAttackAnotherKey(t *testing.T) {
	aws := newSigner(t, 0, 1)
	forger := newSigner(t, 1, 1) // same subject, issuer and serial as aws's certificate
	require.Equal(t, aws.Cert.RawIssuer, forger.Cert.RawIssuer)
	doc := document(testAccount, testRegion, testInstance)
	srv := newTestServer(t, ServerConfig{
		RSA2048Certificates:   certsOf(testRegion, aws),
		SignatureCertificates: certsOf(testRegion, aws),
	})
	_, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, RSA2048: forger.PKCS7(t, doc)}), nil)
	requireRejected(t, err, "PKCS #7 signature of the document of instance i-0123456789abcdef0")
	_, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, Signature: forger.Signature(t, doc)}), nil)
	requireRejected(t, err, "does not verify")

	// A signer of another name and serial is found nowhere.
	stranger := newSigner(t, 2, 77)
	_, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: stranger.PKCS7(t, doc)}), nil)
	requireRejected(t, err, "the signer is none of the region's certificates")

	// AWS's key of another region does not sign for this one.
	srv2 := newTestServer(t, ServerConfig{RSA2048Certificates: map[string][]*x509.Certificate{
		testRegion: {aws.Cert}, "eu-west-1": {stranger.Cert},
	}})
	_, err = srv2.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: stranger.PKCS7(t, doc)}), nil)
	requireRejected(t, err, "the signer is none of the region's certificates")
}

// TestAttackSubstitutedDocument is the attack SPIRE 1.13.6 fixed: a
// genuine PKCS #7 message of one instance, with a "document" field that
// describes another (of the same account, or of an allowed account when
// the genuine one is not). The server verified the message and returned
// the field. Here the field must be the signed content.
func TestAttackSubstitutedDocument(t *testing.T) {
	aws := newSigner(t, 0, 1)
	genuine := document(otherAccount, testRegion, "i-00000000000000001") // the attacker's own instance
	srv := newTestServer(t, ServerConfig{
		AccountIDs:          []string{testAccount, otherAccount},
		RSA2048Certificates: certsOf(testRegion, aws),
	})
	victim := document(testAccount, testRegion, testInstance)
	_, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: victim, RSA2048: aws.PKCS7(t, genuine)}), nil)
	requireRejected(t, err, "the document field differs from the document the PKCS #7 signature covers")

	// The genuine message alone admits the instance it was made for, never
	// the victim.
	res, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: aws.PKCS7(t, genuine)}), nil)
	require.NoError(t, err)
	require.Equal(t, "/spiffekit/agent/aws_iid/210987654321/us-east-1/i-00000000000000001", res.AgentID.Path())
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "instance:id:i-00000000000000001"}))

	// With the attacker's account not allowed, the same message is refused
	// outright, with or without the victim's document beside it.
	strict := newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, aws)})
	_, err = strict.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: aws.PKCS7(t, genuine)}), nil)
	requireRejected(t, err, "account 210987654321 is not allowed")
	_, err = strict.Attest(t.Context(), td, payloadOf(t, Payload{Document: victim, RSA2048: aws.PKCS7(t, genuine)}), nil)
	requireRejected(t, err, "differs")

	// A document field with one byte more (a trailing newline) differs
	// too: the comparison is of bytes, not of meaning.
	_, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{Document: genuine + "\n", RSA2048: aws.PKCS7(t, genuine)}), nil)
	requireRejected(t, err, "differs")
}

func TestAllowLists(t *testing.T) {
	aws := newSigner(t, 0, 1)
	west := newSigner(t, 1, 2)
	certs := map[string][]*x509.Certificate{testRegion: {aws.Cert}, "us-west-2": {west.Cert}}
	srv := newTestServer(t, ServerConfig{RSA2048Certificates: certs, Regions: []string{"us-west-2"}})

	doc := document(testAccount, testRegion, testInstance)
	_, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: aws.PKCS7(t, doc)}), nil)
	requireRejected(t, err, "no certificate for region us-east-1") // the region is not allowed: its certificates are dropped

	docWest := document(testAccount, "us-west-2", testInstance)
	res, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: west.PKCS7(t, docWest)}), nil)
	require.NoError(t, err)
	require.Equal(t, "/spiffekit/agent/aws_iid/123456789012/us-west-2/i-0123456789abcdef0", res.AgentID.Path())

	docOther := document(otherAccount, "us-west-2", testInstance)
	_, err = srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: west.PKCS7(t, docOther)}), nil)
	requireRejected(t, err, "account 210987654321 is not allowed")

	// The signature form obeys the same lists.
	sigSrv := newTestServer(t, ServerConfig{RSA2048Certificates: map[string][]*x509.Certificate{}, SignatureCertificates: certs, Regions: []string{"us-west-2"}})
	_, err = sigSrv.Attest(t.Context(), td, payloadOf(t, Payload{Document: doc, Signature: aws.Signature(t, doc)}), nil)
	requireRejected(t, err, "no certificate for the signature form in region us-east-1")
	_, err = sigSrv.Attest(t.Context(), td, payloadOf(t, Payload{Document: docOther, Signature: west.Signature(t, docOther)}), nil)
	requireRejected(t, err, "account 210987654321 is not allowed")

	// A partition keeps its regions only.
	gov := newSigner(t, 2, 3)
	certs["us-gov-west-1"] = []*x509.Certificate{gov.Cert}
	govSrv := newTestServer(t, ServerConfig{RSA2048Certificates: certs, Partition: PartitionGovCloud})
	_, err = govSrv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: west.PKCS7(t, docWest)}), nil)
	requireRejected(t, err, "no certificate for region us-west-2")
	docGov := document(testAccount, "us-gov-west-1", testInstance)
	_, err = govSrv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: gov.PKCS7(t, docGov)}), nil)
	require.NoError(t, err)
}

func TestMalformedPayloads(t *testing.T) {
	aws := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	srv := newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, aws), SignatureCertificates: certsOf(testRegion, aws)})

	signed := func(d string) Payload { return Payload{RSA2048: aws.PKCS7(t, d)} }
	sha1Msg := func() string {
		sd, err := pkcs7.NewSignedData([]byte(doc))
		require.NoError(t, err)
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA1)
		require.NoError(t, sd.AddSigner(aws.Cert, aws.Key, pkcs7.SignerInfoConfig{}))
		der, err := sd.Finish()
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(der)
	}
	twoSigners := func() string {
		sd, err := pkcs7.NewSignedData([]byte(doc))
		require.NoError(t, err)
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
		require.NoError(t, sd.AddSigner(aws.Cert, aws.Key, pkcs7.SignerInfoConfig{}))
		require.NoError(t, sd.AddSigner(aws.Cert, aws.Key, pkcs7.SignerInfoConfig{}))
		der, err := sd.Finish()
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(der)
	}
	detached := func() string {
		sd, err := pkcs7.NewSignedData([]byte(doc))
		require.NoError(t, err)
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
		require.NoError(t, sd.AddSigner(aws.Cert, aws.Key, pkcs7.SignerInfoConfig{}))
		sd.Detach()
		der, err := sd.Finish()
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(der)
	}

	for _, tc := range []struct {
		name, payload, err string
	}{
		{"empty", "", "payload is empty"},
		{"not JSON", "document", "not a JSON object"},
		{"an array", "[]", "not a JSON object"},
		{"trailing data", `{"rsa2048":"x"} {}`, "data after its JSON object"},
		{"too large", `{"document":"` + strings.Repeat("a", attest.MaxNodePayload) + `"}`, "larger than 65536 bytes"},
		{"huge document", string(payloadOf(t, Payload{Document: strings.Repeat("a", MaxDocumentSize+1), Signature: "x"})), "document is larger"},
		{"huge signature", string(payloadOf(t, Payload{Document: doc, Signature: strings.Repeat("a", MaxSignatureSize+1)})), "a signature is larger"},
		{"no signature", string(payloadOf(t, Payload{Document: doc})), "no signature"},
		{"signature without document", string(payloadOf(t, Payload{Signature: "abcd"})), "no document"},
		{"rsa2048 not base64", string(payloadOf(t, Payload{RSA2048: "!!!"})), "not base64"},
		{"rsa2048 not PKCS #7", string(payloadOf(t, Payload{RSA2048: base64.StdEncoding.EncodeToString([]byte("garbage"))})), "does not parse"},
		{"rsa2048 a certificate", string(payloadOf(t, Payload{RSA2048: base64.StdEncoding.EncodeToString(aws.Cert.Raw)})), "does not parse"},
		{"detached", string(payloadOf(t, Payload{RSA2048: detached()})), "holds no document"},
		{"SHA-1", string(payloadOf(t, Payload{RSA2048: sha1Msg()})), "want SHA-256"},
		{"two signers", string(payloadOf(t, Payload{RSA2048: twoSigners()})), "2 signers"},
		{"content not JSON", string(payloadOf(t, signed("not json"))), "not a JSON object"},
		{"content not UTF-8", string(payloadOf(t, signed("{\"a\":\"\xff\"}"))), "not UTF-8"},
		{"bad account", string(payloadOf(t, signed(document("12345", testRegion, testInstance)))), "not 12 digits"},
		{"bad region", string(payloadOf(t, signed(document(testAccount, "../../x", testInstance)))), "not a region name"},
		{"bad instance", string(payloadOf(t, signed(document(testAccount, testRegion, "i-../x")))), "not an instance ID"},
		{"no certificate for the region", string(payloadOf(t, signed(document(testAccount, "eu-west-1", testInstance)))), "no certificate for region eu-west-1"},
		{"signature not base64", string(payloadOf(t, Payload{Document: doc, Signature: "!!"})), "not base64"},
		{"signature document not JSON", string(payloadOf(t, Payload{Document: "{", Signature: "abcd"})), "not a JSON object"},
		{"pkcs7 for no region, no signature", string(payloadOf(t, Payload{Document: doc, RSA2048: aws.PKCS7(t, document(testAccount, "eu-west-1", testInstance))})), "no certificate for region eu-west-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, []byte(tc.payload), nil)
			requireRejected(t, err, tc.err)
		})
	}

	_, err := srv.Attest(t.Context(), spiffeid.TrustDomain{}, payloadOf(t, signed(doc)), nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
}

func TestSelectorsLeaveOutBadValues(t *testing.T) {
	sels := selectors(Document{AccountID: testAccount, Region: testRegion, InstanceID: testInstance, ImageID: "ami-\x00", InstanceType: strings.Repeat("x", attest.MaxValueLength+1)})
	require.Equal(t, 3, sels.Len(), "%v", sels)
}

func TestNewServerConfiguration(t *testing.T) {
	aws := newSigner(t, 0, 1)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecCert := *aws.Cert
	ecCert.PublicKey = &ec.PublicKey
	good := certsOf(testRegion, aws)
	for _, tc := range []struct {
		name string
		c    ServerConfig
		err  string
	}{
		{"no account", ServerConfig{RSA2048Certificates: good}, "account allow-list is required"},
		{"bad account", ServerConfig{AccountIDs: []string{"1234"}, RSA2048Certificates: good}, "not 12 digits"},
		{"too many accounts", ServerConfig{AccountIDs: make([]string, maxListItems+1)}, "more than 4096"},
		{"bad region", ServerConfig{AccountIDs: []string{testAccount}, Regions: []string{"moon"}}, "not a region name"},
		{"bad partition", ServerConfig{AccountIDs: []string{testAccount}, Partition: "aws-moon"}, "unknown partition"},
		{"region outside partition", ServerConfig{AccountIDs: []string{testAccount}, Partition: PartitionChina, Regions: []string{testRegion}}, "not in partition aws-cn"},
		{"region without certificate", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, Regions: []string{"eu-west-1"}}, "eu-west-1 has no certificate"},
		{"no certificate", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: map[string][]*x509.Certificate{}}, "no certificate for any allowed region"},
		{"bad certificate region", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: certsOf("x", aws)}, `"x" is not a region name`},
		{"empty region", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: map[string][]*x509.Certificate{testRegion: nil}}, "has no certificate"},
		{"nil certificate", ServerConfig{AccountIDs: []string{testAccount}, SignatureCertificates: map[string][]*x509.Certificate{testRegion: {nil}}}, "is nil"},
		{"EC certificate", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: map[string][]*x509.Certificate{testRegion: {&ecCert}}}, "not RSA"},
		{"template does not parse", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, AgentPathTemplate: "/{{ .Region"}, "agent path template"},
		{"template of an unknown field", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, AgentPathTemplate: "/aws_iid/{{ .Zone }}"}, "agent path template"},
		{"template outside aws_iid", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, AgentPathTemplate: "/x509pop/{{ .InstanceID }}"}, "does not start with /aws_iid/"},
		{"template not a path", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, AgentPathTemplate: "/aws_iid/{{ .Region }}/"}, "agent path template"},
		{"template of tags without lookups", ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: good, AgentPathTemplate: "/aws_iid/{{ .Tags.env }}"}, "only the EC2 lookups read, and they are off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.c)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestAWSCertificates(t *testing.T) {
	certs := AWSCertificates()
	require.Len(t, certs, 31)
	partitions := map[string]int{}
	for region, cs := range certs {
		require.Regexp(t, regionRE, region)
		require.Len(t, cs, 1, region)
		c := cs[0]
		require.Contains(t, c.Subject.Organization, "Amazon Web Services LLC", region)
		require.Equal(t, 2048, c.PublicKey.(interface{ Size() int }).Size()*8, region)
		require.True(t, c.NotAfter.After(time.Date(2190, 1, 1, 0, 0, 0, 0, time.UTC)), region)
		partitions[PartitionOf(region)]++
	}
	require.Equal(t, map[string]int{PartitionAWS: 27, PartitionChina: 2, PartitionGovCloud: 2}, partitions)
	// A fresh map each time.
	delete(certs, testRegion)
	require.Len(t, AWSCertificates(), 31)

	// The default server trusts them, and so refuses a test key.
	srv := newTestServer(t, ServerConfig{})
	require.Len(t, srv.rsa2048, 31)
	aws := newSigner(t, 0, 1)
	_, err := srv.Attest(t.Context(), td, payloadOf(t, Payload{RSA2048: aws.PKCS7(t, document(testAccount, testRegion, testInstance))}), nil)
	requireRejected(t, err, "none of the region's certificates")
	cn := newTestServer(t, ServerConfig{Partition: PartitionChina})
	require.Len(t, cn.rsa2048, 2)
}

func TestLoadCertificates(t *testing.T) {
	aws := newSigner(t, 0, 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "us-east-1.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: aws.Cert.Raw}), 0o600))
	certs, err := LoadCertificates(map[string]string{testRegion: file})
	require.NoError(t, err)
	require.True(t, certs[testRegion][0].Equal(aws.Cert))

	_, err = LoadCertificates(map[string]string{"bad": file})
	require.ErrorContains(t, err, "not a region name")
	_, err = LoadCertificates(map[string]string{testRegion: filepath.Join(dir, "missing.pem")})
	require.ErrorContains(t, err, "certificates of region us-east-1")
	junk := filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(junk, []byte("junk"), 0o600))
	_, err = LoadCertificates(map[string]string{testRegion: junk})
	require.ErrorContains(t, err, "junk.pem")
}

func TestPartitionOf(t *testing.T) {
	require.Equal(t, PartitionChina, PartitionOf("cn-north-1"))
	require.Equal(t, PartitionGovCloud, PartitionOf("us-gov-east-1"))
	require.Equal(t, PartitionAWS, PartitionOf("eu-west-3"))
}

func TestClientConfiguration(t *testing.T) {
	_, err := NewClient(ClientConfig{Timeout: -1})
	require.ErrorContains(t, err, "negative timeout")
	for _, e := range []string{"169.254.169.254", "ftp://x", "http://", "://"} {
		_, err = NewClient(ClientConfig{Endpoint: e})
		require.ErrorContains(t, err, "want an http:// or https:// URL", e)
	}
	c, err := NewClient(ClientConfig{})
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, c.timeout)
}

// TestClientHostileService: a metadata service that floods, stalls, or
// will not give a token ends the fetch with an error, within its timeout.
func TestClientHostileService(t *testing.T) {
	defer leaktest.Check(t)()
	aws := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)

	t.Run("huge document", func(t *testing.T) {
		data := instanceData(t, aws, doc)
		data[documentPath] = strings.Repeat("x", 1<<20)
		f := startIMDS(t, data)
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.ErrorContains(t, err, "larger than 16384 bytes")
	})
	t.Run("document just over the payload's bound", func(t *testing.T) {
		data := instanceData(t, aws, doc)
		data[rsa2048Path] = strings.Repeat("x", MaxSignatureSize) // 16 KiB, within the response bound
		data[documentPath] = strings.Repeat("d", MaxDocumentSize)
		f := startIMDS(t, data)
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		p, err := c.Payload(t.Context())
		require.NoError(t, err)
		require.LessOrEqual(t, len(p), attest.MaxNodePayload)
	})
	t.Run("huge token", func(t *testing.T) {
		f := startIMDS(t, instanceData(t, aws, doc))
		f.SetHugeToken()
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.Error(t, err)
		require.Zero(t, f.Gets())
	})
	t.Run("no token, no IMDSv1", func(t *testing.T) {
		f := startIMDS(t, instanceData(t, aws, doc))
		f.SetRefusePUT()
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.Error(t, err)
		require.Zero(t, f.Tokenless(), "the client fell back to IMDSv1")
	})
	t.Run("never answers", func(t *testing.T) {
		data := instanceData(t, aws, doc)
		data[signaturePath] = imdstest.Hang
		f := startIMDS(t, data)
		c, err := NewClient(ClientConfig{Endpoint: f.URL, Timeout: 300 * time.Millisecond})
		require.NoError(t, err)
		_, err = c.Payload(context.Background())
		require.Error(t, err)
		require.Contains(t, err.Error(), signaturePath)
		require.Positive(t, f.HungCalls())
	})
	t.Run("missing rsa2048", func(t *testing.T) {
		data := instanceData(t, aws, doc)
		delete(data, rsa2048Path)
		f := startIMDS(t, data)
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.ErrorContains(t, err, rsa2048Path)
	})
	t.Run("empty document", func(t *testing.T) {
		data := instanceData(t, aws, doc)
		data[documentPath] = "  \n"
		f := startIMDS(t, data)
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.ErrorContains(t, err, "is empty")
	})
	t.Run("nothing listens", func(t *testing.T) {
		f := startIMDS(t, nil)
		url := f.URL
		f.Close()
		c, err := NewClient(ClientConfig{Endpoint: url, Timeout: 2 * time.Second})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.Error(t, err)
	})
	t.Run("cancelled", func(t *testing.T) {
		f := startIMDS(t, instanceData(t, aws, doc))
		c, err := NewClient(ClientConfig{Endpoint: f.URL})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = c.Payload(ctx)
		require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "canceled"), "%v", err)
	})
}
