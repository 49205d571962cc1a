package awstest

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The server refuses what AWS refuses: requests that are not a signed
// form POST, and signatures by keys it did not issue.
func TestRefusesUnsignedRequests(t *testing.T) {
	s := Start(t)
	post := func(auth string, form url.Values) (int, string) {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Amz-Date", "20260102T030405Z")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	form := url.Values{"Action": {"DescribeInstances"}, "Version": {EC2Version}, "InstanceId.1": {"i-0123456789abcdef0"}}
	code, body := post("", form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>MissingAuthenticationToken</Code>")

	sig := "AWS4-HMAC-SHA256 Credential=%s/20260102/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + strings.Repeat("0", 64)
	code, body = post(strings.Replace(sig, "%s", "AKIDUNKNOWN", 1), form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>InvalidClientTokenId</Code>")

	code, body = post(strings.Replace(sig, "%s", s.Key().AccessKeyID, 1), form)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "<Code>SignatureDoesNotMatch</Code>")
	require.Empty(t, s.Calls())

	resp, err := http.Get(s.URL + "/?Action=DescribeInstances")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// clients returns EC2, IAM and STS clients of the SDK pointed at s, signing
// with key.
func clients(s *Server, key Key) (*ec2.Client, *iam.Client, *sts.Client) {
	creds := credentials.NewStaticCredentialsProvider(key.AccessKeyID, key.SecretAccessKey, key.SessionToken)
	return ec2.New(ec2.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: creds, RetryMaxAttempts: 1}),
		iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: creds, RetryMaxAttempts: 1}),
		sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.URL), Credentials: creds, RetryMaxAttempts: 1})
}

// The SDK's own clients read what the server says as AWS says it: an
// instance with its tags, groups, profile and root volume, a state filter,
// an instance profile and its roles, assumed-role credentials the server
// then accepts, and AWS's error codes.
func TestSDKReadsTheServer(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	launch := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	profile := "arn:aws:iam::123456789012:instance-profile/path/web"
	s.AddInstance(Instance{ID: "i-0123456789abcdef0", AccountID: "123456789012", Tags: [][2]string{{"team", "a&b"}},
		SecurityGroups: [][2]string{{"sg-1", "web"}}, InstanceProfileARN: profile, LaunchTime: launch})
	s.AddInstance(Instance{ID: "i-0000000000000000f", AccountID: "123456789012", State: "stopped", NoRootMapping: true, NoNetworkInterface: true})
	e, i, st := clients(s, s.Key())

	out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1)
	assert.Equal(t, "123456789012", aws.ToString(out.Reservations[0].OwnerId))
	inst := out.Reservations[0].Instances[0]
	assert.Equal(t, ec2types.InstanceStateNameRunning, inst.State.Name)
	assert.Equal(t, "a&b", aws.ToString(inst.Tags[0].Value))
	assert.Equal(t, "web", aws.ToString(inst.SecurityGroups[0].GroupName))
	assert.Equal(t, profile, aws.ToString(inst.IamInstanceProfile.Arn))
	assert.Equal(t, launch, aws.ToTime(inst.LaunchTime))
	require.Len(t, inst.BlockDeviceMappings, 1)
	assert.Equal(t, launch, aws.ToTime(inst.BlockDeviceMappings[0].Ebs.AttachTime), "attached at launch by default")
	assert.Len(t, inst.NetworkInterfaces, 1)

	running := []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}}
	out, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000000f"}, Filters: running})
	require.NoError(t, err)
	assert.Empty(t, out.Reservations, "a stopped instance is filtered out")
	_, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0000000000000000f"},
		Filters: []ec2types.Filter{{Name: aws.String("tag:x"), Values: []string{"y"}}}})
	assert.ErrorContains(t, err, "InvalidParameterValue")
	_, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-ffffffffffffffff0"}})
	assert.ErrorContains(t, err, "InvalidInstanceID.NotFound")

	s.AddInstanceProfile(profile, "arn:aws:iam::123456789012:role/web")
	got, err := i.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("web")})
	require.NoError(t, err)
	assert.Equal(t, ProfileID, aws.ToString(got.InstanceProfile.InstanceProfileId))
	assert.Equal(t, "arn:aws:iam::123456789012:role/web", aws.ToString(got.InstanceProfile.Roles[0].Arn))
	s.SetProfileID("web", "AIPAOTHER")
	got, err = i.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("web")})
	require.NoError(t, err)
	assert.Equal(t, "AIPAOTHER", aws.ToString(got.InstanceProfile.InstanceProfileId))
	_, err = i.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("gone")})
	assert.ErrorContains(t, err, "NoSuchEntity")

	role := "arn:aws:iam::123456789012:role/reader"
	_, err = st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s")})
	assert.ErrorContains(t, err, "AccessDenied", "a role the server does not know")
	s.AddRole(t, role)
	assumed, err := st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("s")})
	require.NoError(t, err)
	c := assumed.Credentials
	e2, _, _ := clients(s, Key{aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)})
	_, err = e2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	require.NoError(t, err, "the assumed role's credentials are accepted")
	e3, _, _ := clients(s, Key{aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), "wrong"})
	_, err = e3.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	assert.ErrorContains(t, err, "InvalidClientTokenId", "a wrong session token")

	calls := s.CallsOf("DescribeInstances")
	require.NotEmpty(t, calls)
	assert.Equal(t, "ec2", calls[0].Service)
	assert.Equal(t, "us-east-1", calls[0].Region)
	assert.Equal(t, s.Key().AccessKeyID, calls[0].AccessKeyID)
	assert.Equal(t, "i-0123456789abcdef0", calls[0].Form.Get("InstanceId.1"))
	assert.Equal(t, calls[len(calls)-1].AccessKeyID, aws.ToString(c.AccessKeyId))
	assert.Len(t, s.CallsOf("AssumeRole"), 2)
}

// Raw answers stand for an AWS that misbehaves: another status and body,
// one without a length, and one that never comes.
func TestRawAnswers(t *testing.T) {
	s := Start(t)
	e, _, _ := clients(s, s.Key())
	s.SetRaw("DescribeInstances", http.StatusServiceUnavailable, "<Response><Errors><Error><Code>Unavailable</Code><Message>down</Message></Error></Errors></Response>")
	_, err := e.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
	assert.ErrorContains(t, err, "Unavailable")

	s.SetRaw("DescribeInstances", Chunked, "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>")
	out, err := e.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
	require.NoError(t, err)
	assert.Empty(t, out.Reservations)

	s.SetRaw("DescribeInstances", http.StatusOK, Hang)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-1"}})
	assert.Error(t, err, "a request that never gets an answer ends with its context")

	// A signed request for an action the server does not speak.
	_, i, _ := clients(s, s.Key())
	_, err = i.ListRoles(t.Context(), &iam.ListRolesInput{})
	assert.ErrorContains(t, err, "InvalidAction")
}
