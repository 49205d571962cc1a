package awsiid

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/awstest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

const (
	testProfile = "arn:aws:iam::123456789012:instance-profile/web/blog"
	testRole    = "arn:aws:iam::123456789012:role/blog"
)

// lookupFixture is a server with the lookup on, against the fake APIs,
// and a payload signed for the test instance.
type lookupFixture struct {
	api     *awstest.Server
	payload []byte
	signer  *signer
}

func newLookupFixture(t *testing.T) *lookupFixture {
	t.Helper()
	s := newSigner(t, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	return &lookupFixture{
		api:     awstest.Start(t),
		payload: payloadOf(t, Payload{Document: doc, RSA2048: s.PKCS7(t, doc)}),
		signer:  s,
	}
}

// config returns a lookup configuration of the fake's credentials and
// endpoints.
func (f *lookupFixture) config() *LookupConfig {
	k := f.api.Key()
	return &LookupConfig{
		AccessKeyID:     k.AccessKeyID,
		SecretAccessKey: k.SecretAccessKey,
		EC2Endpoint:     f.api.URL,
		IAMEndpoint:     f.api.URL,
		STSEndpoint:     f.api.URL,
		MaxAttempts:     1,
	}
}

func (f *lookupFixture) server(t *testing.T, lc *LookupConfig) *Server {
	t.Helper()
	return newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, f.signer), Lookup: lc})
}

// instance returns the test instance, with tags, security groups and a
// profile.
func instance() awstest.Instance {
	return awstest.Instance{
		ID:                 testInstance,
		AccountID:          testAccount,
		Tags:               [][2]string{{"Name", "blog"}, {"env", "prod:eu"}},
		SecurityGroups:     [][2]string{{"sg-01234567", "web"}, {"sg-89abcdef", "ssh"}},
		InstanceProfileARN: testProfile,
	}
}

func TestLookupSelectors(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newLookupFixture(t)
	f.api.AddInstance(instance())
	f.api.AddInstanceProfile(testProfile, testRole)
	srv := f.server(t, f.config())

	res, err := srv.Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	for _, v := range []string{
		"account:123456789012", "region:us-east-1", "instance:id:i-0123456789abcdef0",
		"tag:Name:blog", "tag:env:prod:eu",
		"sg:id:sg-01234567", "sg:name:web", "sg:id:sg-89abcdef", "sg:name:ssh",
		"iamrole:" + testRole,
	} {
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: v}), "no %s in %v", v, res.Selectors)
	}
	require.Equal(t, 13, res.Selectors.Len(), "%v", res.Selectors)

	// The calls: signed for the document's region, with the configured
	// key, DescribeInstances of the instance filtered to live states.
	d := f.api.CallsOf("DescribeInstances")
	require.Len(t, d, 1)
	require.Equal(t, "ec2", d[0].Service)
	require.Equal(t, testRegion, d[0].Region)
	require.Equal(t, f.api.Key().AccessKeyID, d[0].AccessKeyID)
	require.Equal(t, testInstance, d[0].Form.Get("InstanceId.1"))
	require.Equal(t, "instance-state-name", d[0].Form.Get("Filter.1.Name"))
	require.ElementsMatch(t, []string{"pending", "running"}, []string{d[0].Form.Get("Filter.1.Value.1"), d[0].Form.Get("Filter.1.Value.2")})
	g := f.api.CallsOf("GetInstanceProfile")
	require.Len(t, g, 1)
	require.Equal(t, "iam", g[0].Service)
	require.Equal(t, "blog", g[0].Form.Get("InstanceProfileName"), "the name without the profile's path")

	// A second attestation reuses the clients.
	_, err = srv.Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.Len(t, f.api.CallsOf("DescribeInstances"), 2)
}

// TestAgentPathTemplate: SPIRE's agent_path_template names the agent from
// the document's fields and, with the lookups, the instance's tags; an
// instance without a tag the template needs is refused.
func TestAgentPathTemplate(t *testing.T) {
	f := newLookupFixture(t)
	srv := newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, f.signer),
		AgentPathTemplate: "/{{ .PluginName }}/{{ .Region }}/{{ .InstanceType }}/{{ .InstanceID }}"})
	res, err := srv.Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/aws_iid/us-east-1/m5.large/i-0123456789abcdef0", res.AgentID.String())

	// The default: SPIRE's path.
	res, err = newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, f.signer)}).Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0", res.AgentID.String())

	f.api.AddInstance(instance())
	f.api.AddInstanceProfile(testProfile, testRole)
	tagged := func(tmpl string) *Server {
		return newTestServer(t, ServerConfig{RSA2048Certificates: certsOf(testRegion, f.signer), Lookup: f.config(), AgentPathTemplate: tmpl})
	}
	res, err = tagged("/aws_iid/{{ .Tags.Name }}/{{ .InstanceID }}").Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/aws_iid/blog/i-0123456789abcdef0", res.AgentID.String())

	// A tag the instance lacks, or whose value makes no path ("prod:eu"
	// is one; "a/b" would make two segments, a tag of "" none).
	_, err = tagged("/aws_iid/{{ .Tags.team }}/{{ .InstanceID }}").Attest(t.Context(), td, f.payload, nil)
	requireRejected(t, err, `map has no entry for key "team"`)
	_, err = tagged(`/aws_iid/{{ index .Tags "team" }}/{{ .InstanceID }}`).Attest(t.Context(), td, f.payload, nil)
	requireRejected(t, err, "agent path template")
}

func TestLookupDisableInstanceProfileSelectors(t *testing.T) {
	f := newLookupFixture(t)
	f.api.AddInstance(instance())
	lc := f.config()
	lc.DisableInstanceProfileSelectors = true
	res, err := f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "tag:Name:blog"}))
	for sel := range res.Selectors.All() {
		require.False(t, strings.HasPrefix(sel.Value, "iamrole:"), "%v", sel)
	}
	require.Empty(t, f.api.CallsOf("GetInstanceProfile"))
}

// TestLookupAssumeRole: with assume_role, the calls are made with the
// credentials STS gives for the role in the instance's account.
func TestLookupAssumeRole(t *testing.T) {
	f := newLookupFixture(t)
	f.api.AddInstance(instance())
	f.api.AddInstanceProfile(testProfile, testRole)
	f.api.AddRole(t, "arn:aws:iam::123456789012:role/spire-attestor")
	lc := f.config()
	lc.AssumeRole = "spire-attestor"
	res, err := f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
	require.NoError(t, err)
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "iamrole:" + testRole}))

	a := f.api.CallsOf("AssumeRole")
	require.Len(t, a, 1)
	require.Equal(t, "sts", a[0].Service)
	require.Equal(t, f.api.Key().AccessKeyID, a[0].AccessKeyID)
	d := f.api.CallsOf("DescribeInstances")
	require.Len(t, d, 1)
	require.NotEqual(t, f.api.Key().AccessKeyID, d[0].AccessKeyID, "described with the role's credentials")

	// A role the instance's account does not let us assume: refused.
	lc.AssumeRole = "other"
	_, err = f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
	require.ErrorContains(t, err, "AccessDenied")
}

// TestLookupBlockDevice: the root volume must have been attached with the
// primary network interface, unless skip_block_device.
func TestLookupBlockDevice(t *testing.T) {
	launch := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	cases := []struct {
		name string
		mod  func(*awstest.Instance)
		err  string // "": admitted
	}{
		{"attached with the interface", func(i *awstest.Instance) { i.LaunchTime, i.RootAttachTime = launch, launch.Add(59*time.Second) }, ""},
		{"swapped root volume", func(i *awstest.Instance) { i.LaunchTime, i.RootAttachTime = launch, launch.Add(2*time.Hour) }, "was replaced after launch"},
		{"attached before", func(i *awstest.Instance) { i.LaunchTime, i.RootAttachTime = launch, launch.Add(-2*time.Minute) }, "was replaced after launch"},
		{"instance store", func(i *awstest.Instance) {
			i.LaunchTime, i.RootAttachTime, i.RootDeviceType = launch, launch.Add(2*time.Hour), "instance-store"
		}, ""},
		{"no network interface", func(i *awstest.Instance) { i.NoNetworkInterface = true }, "no primary network interface"},
		{"no root mapping", func(i *awstest.Instance) { i.NoRootMapping = true }, "no block device mapping for the root device"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newLookupFixture(t)
			inst := instance()
			inst.InstanceProfileARN = ""
			c.mod(&inst)
			f.api.AddInstance(inst)
			_, err := f.server(t, f.config()).Attest(t.Context(), td, f.payload, nil)
			if c.err == "" {
				require.NoError(t, err)
				return
			}
			requireRejected(t, err, c.err)

			lc := f.config()
			lc.SkipBlockDevice = true
			_, err = f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
			require.NoError(t, err, "skip_block_device")
		})
	}
}

// TestLookupAttacks: what the APIs say that does not fit the signed
// document refuses the instance; nothing is admitted with fewer
// selectors.
func TestLookupAttacks(t *testing.T) {
	describe := func(items string) string {
		return `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>x</requestId><reservationSet>` + items + `</reservationSet></DescribeInstancesResponse>`
	}
	reservation := func(owner, id string) string {
		return `<item><reservationId>r-1</reservationId><ownerId>` + owner + `</ownerId><instancesSet><item><instanceId>` + id + `</instanceId><instanceState><code>16</code><name>running</name></instanceState></item></instancesSet></item>`
	}
	cases := []struct {
		name    string
		setup   func(*awstest.Server)
		reject  string // wraps ErrNodeRejected
		failure string // does not
	}{
		{"unknown instance", func(*awstest.Server) {}, "EC2 has no instance", ""},
		{"stopped instance", func(s *awstest.Server) {
			i := instance()
			i.State = "stopped"
			s.AddInstance(i)
		}, "neither pending nor running", ""},
		{"another instance", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusOK, describe(reservation(testAccount, "i-0fedcba9876543210")))
		}, `describes instance "i-0fedcba9876543210"`, ""},
		{"another account", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusOK, describe(reservation(otherAccount, testInstance)))
		}, "of account \"210987654321\"", ""},
		{"two instances", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusOK, describe(reservation(testAccount, testInstance)+reservation(testAccount, "i-0fedcba9876543210")))
		}, "describes 2 instances", ""},
		{"profile of another account", func(s *awstest.Server) {
			i := instance()
			i.InstanceProfileARN = "arn:aws:iam::210987654321:instance-profile/blog"
			s.AddInstance(i)
			s.AddInstanceProfile(i.InstanceProfileARN, testRole)
		}, "is of another account", ""},
		{"profile not an ARN", func(s *awstest.Server) {
			i := instance()
			i.InstanceProfileARN = "blog"
			s.AddInstance(i)
		}, "not an instance profile's ARN", ""},
		{"IAM describes another profile", func(s *awstest.Server) {
			s.AddInstance(instance())
			s.AddInstanceProfile("arn:aws:iam::210987654321:instance-profile/blog", "arn:aws:iam::210987654321:role/admin")
		}, "not the instance's", ""},
		{"IAM describes a profile made again", func(s *awstest.Server) {
			s.AddInstance(instance())
			s.AddInstanceProfile(testProfile, testRole)
			s.SetProfileID("blog", "AIPAOTHER")
		}, "made again since", ""},
		{"no such profile", func(s *awstest.Server) {
			s.AddInstance(instance())
		}, "", "NoSuchEntity"},
		{"EC2 denies", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusForbidden, `<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>x</RequestID></Response>`)
		}, "", "UnauthorizedOperation"},
		{"EC2 fails", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusInternalServerError, `<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred</Message></Error></Errors><RequestID>x</RequestID></Response>`)
		}, "", "InternalError"},
		{"malformed XML", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusOK, `<DescribeInstancesResponse><reservationSet><item><instancesSet>`)
		}, "", "DescribeInstances"},
		{"huge response", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", http.StatusOK, describe(reservation(testAccount, testInstance)+"<x>"+strings.Repeat("a", MaxAPIResponse)+"</x>"))
		}, "", "larger than"},
		{"huge response without length", func(s *awstest.Server) {
			s.SetRaw("DescribeInstances", awstest.Chunked, describe(reservation(testAccount, testInstance)+"<x>"+strings.Repeat("a", MaxAPIResponse)+"</x>"))
		}, "", "DescribeInstances"},
		{"IAM fails", func(s *awstest.Server) {
			s.AddInstance(instance())
			s.SetRaw("GetInstanceProfile", http.StatusServiceUnavailable, `<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>x</Message></Error><RequestId>x</RequestId></ErrorResponse>`)
		}, "", "ServiceUnavailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newLookupFixture(t)
			c.setup(f.api)
			lc := f.config()
			lc.SkipBlockDevice = true // the raw descriptions have no devices
			_, err := f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
			if c.reject != "" {
				requireRejected(t, err, c.reject)
				return
			}
			require.Error(t, err)
			require.NotErrorIs(t, err, attest.ErrNodeRejected)
			require.ErrorContains(t, err, c.failure)
		})
	}
}

// TestLookupWrongCredentials: the fake checks signatures, so a wrong
// secret is refused by it, and the attestation fails.
func TestLookupWrongCredentials(t *testing.T) {
	f := newLookupFixture(t)
	f.api.AddInstance(instance())
	lc := f.config()
	lc.SecretAccessKey = "not-the-secret"
	_, err := f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
	require.ErrorContains(t, err, "SignatureDoesNotMatch")
	require.Empty(t, f.api.Calls())
}

// TestLookupHangs: an API that never answers fails the attestation after
// the configured timeout, with no goroutine left behind.
func TestLookupHangs(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newLookupFixture(t)
	f.api.SetRaw("DescribeInstances", 0, awstest.Hang)
	lc := f.config()
	lc.Timeout = 200 * time.Millisecond
	_, err := f.server(t, lc).Attest(t.Context(), td, f.payload, nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)

	// The caller's context bounds it too.
	lc.Timeout = time.Hour
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = f.server(t, lc).Attest(ctx, td, f.payload, nil)
	require.Error(t, err)
}

func TestLookupConfiguration(t *testing.T) {
	for _, c := range []struct {
		lc  LookupConfig
		err string
	}{
		{LookupConfig{AccessKeyID: "AKID"}, "both"},
		{LookupConfig{SecretAccessKey: "x"}, "both"},
		{LookupConfig{AssumeRole: "arn:aws:iam::123456789012:role/x"}, "not an IAM role name"},
		{LookupConfig{EC2Endpoint: "ftp://x"}, "EC2 endpoint"},
		{LookupConfig{IAMEndpoint: "http://"}, "IAM endpoint"},
		{LookupConfig{STSEndpoint: "::"}, "STS endpoint"},
		{LookupConfig{Timeout: -1}, "negative"},
		{LookupConfig{MaxAttempts: -1}, "negative"},
	} {
		_, err := NewServer(ServerConfig{AccountIDs: []string{testAccount}, Lookup: &c.lc})
		require.ErrorContains(t, err, c.err, "%+v", c.lc)
	}
	_, err := NewServer(ServerConfig{AccountIDs: []string{testAccount}, Lookup: &LookupConfig{AssumeRole: "spire-attestor", HTTPClient: &http.Client{}}})
	require.NoError(t, err)
}

// The primary network interface is found by its device index, and an
// instance without one, or without a root device name, is refused.
func TestCheckBlockDeviceShapes(t *testing.T) {
	require.ErrorContains(t, checkBlockDevice(&ec2types.Instance{}), "no primary network interface")
	now := time.Now()
	zero, one := int32(0), int32(1)
	inst := &ec2types.Instance{NetworkInterfaces: []ec2types.InstanceNetworkInterface{
		{Attachment: &ec2types.InstanceNetworkInterfaceAttachment{DeviceIndex: &one, AttachTime: &now}},
		{Attachment: nil},
		{Attachment: &ec2types.InstanceNetworkInterfaceAttachment{DeviceIndex: &zero, AttachTime: &now}},
	}}
	require.ErrorContains(t, checkBlockDevice(inst), "no root device name")
	root := "/dev/sda1"
	inst.RootDeviceName = &root
	inst.BlockDeviceMappings = []ec2types.InstanceBlockDeviceMapping{{DeviceName: &root}}
	require.ErrorContains(t, checkBlockDevice(inst), "no attach time of the root volume")
}
