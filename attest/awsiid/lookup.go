package awsiid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/bodylimit"
)

// DefaultLookupTimeout bounds the API calls of one attestation when
// [LookupConfig].Timeout is zero.
const DefaultLookupTimeout = 10 * time.Second

// MaxAPIResponse bounds the body of one response of the EC2, IAM or STS
// API: the description of one instance is a few kilobytes.
const MaxAPIResponse = 1 << 20

// maxAttachSkew is how far apart the attachment of an instance's root
// volume and of its primary network interface may be, SPIRE's 60 seconds:
// both are attached at launch.
const maxAttachSkew = 60 * time.Second

// LookupConfig turns on the lookup of each attesting instance through the
// EC2 and IAM APIs, for the selectors of its tags, security groups and IAM
// roles, and for the check that its root volume is the one it was
// launched with. Its keys are those of SPIRE's aws_iid server plugin. The
// credentials need ec2:DescribeInstances and, unless
// DisableInstanceProfileSelectors, iam:GetInstanceProfile.
type LookupConfig struct {
	// AccessKeyID and SecretAccessKey are the credentials of the calls
	// (SPIRE's access_key_id and secret_access_key): both or neither.
	// Neither means the SDK's default chain: the AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY environment variables, the shared
	// configuration files, or the role of the server's own instance.
	AccessKeyID, SecretAccessKey string

	// AssumeRole, if not empty, is the name of a role (SPIRE's
	// assume_role) assumed in the account of each attesting instance,
	// arn:<partition>:iam::<account>:role/<AssumeRole>, through STS with
	// the credentials above: the lookups of an instance are then made in
	// its own account.
	AssumeRole string

	// SkipBlockDevice turns off the check that the instance's root volume
	// was attached within a minute of its primary network interface
	// (SPIRE's skip_block_device). The check refuses an instance whose
	// root volume was detached and another attached since launch: a disk
	// that may carry a stolen agent key, or a document read elsewhere.
	SkipBlockDevice bool

	// DisableInstanceProfileSelectors leaves out the iamrole selectors and
	// the IAM call (SPIRE's disable_instance_profile_selectors).
	DisableInstanceProfileSelectors bool

	// EC2Endpoint, IAMEndpoint and STSEndpoint, if not empty, replace the
	// APIs' endpoints (the SDK's base endpoint): for a VPC endpoint, a
	// proxy, or a local stand-in in tests. Empty means AWS's endpoint of
	// the instance's region.
	EC2Endpoint, IAMEndpoint, STSEndpoint string

	// Timeout bounds the API calls of one attestation. Zero means
	// [DefaultLookupTimeout].
	Timeout time.Duration

	// MaxAttempts is how many times a call that failed in a way AWS says
	// may be retried is tried. Zero means the SDK's default (3).
	MaxAttempts int

	// HTTPClient carries the calls. Nil means the SDK's client, which uses
	// the proxy of the environment and the CA bundle of AWS_CA_BUNDLE.
	// Either way each response body is bounded by [MaxAPIResponse].
	HTTPClient *http.Client
}

// lookup reads instances through the EC2 and IAM APIs.
type lookup struct {
	c       LookupConfig
	timeout time.Duration

	mu      sync.Mutex
	base    *aws.Config         // nil until loaded
	clients map[string]*apiPair // by account and region
}

// apiPair is the EC2 and IAM clients of one account and region.
type apiPair struct {
	ec2 *ec2.Client
	iam *iam.Client
}

// roleNameRE: IAM role names are 1 to 64 of these characters.
var roleNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)

func newLookup(c LookupConfig) (*lookup, error) {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return nil, errors.New("awsiid: give both the access key ID and the secret access key, or neither")
	}
	if c.AssumeRole != "" && !roleNameRE.MatchString(c.AssumeRole) {
		return nil, fmt.Errorf("awsiid: %q is not an IAM role name (give the name, not the ARN)", truncate(c.AssumeRole))
	}
	for _, e := range []struct{ name, url string }{{"EC2", c.EC2Endpoint}, {"IAM", c.IAMEndpoint}, {"STS", c.STSEndpoint}} {
		if e.url == "" {
			continue
		}
		if u, err := url.Parse(e.url); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("awsiid: %s endpoint %q: want an https:// (or http://) URL", e.name, truncate(e.url))
		}
	}
	if c.Timeout < 0 || c.MaxAttempts < 0 {
		return nil, errors.New("awsiid: the lookup timeout and attempts must not be negative")
	}
	l := &lookup{c: c, timeout: c.Timeout, clients: map[string]*apiPair{}}
	if l.timeout == 0 {
		l.timeout = DefaultLookupTimeout
	}
	return l, nil
}

// errAPIResponseTooLarge is the error of a response over MaxAPIResponse.
var errAPIResponseTooLarge = fmt.Errorf("awsiid: an AWS API response is larger than %d bytes", MaxAPIResponse)

// limitClient bounds the bodies of the responses its client gets.
type limitClient struct{ c aws.HTTPClient }

func (l limitClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := l.c.Do(r)
	if err != nil {
		return nil, err
	}
	if err := bodylimit.Limit(resp, MaxAPIResponse, errAPIResponseTooLarge); err != nil {
		return nil, err
	}
	return resp, nil
}

// apis returns the clients of the account and region, loading the
// configuration and credentials at the first call.
func (l *lookup) apis(ctx context.Context, account, region string) (*apiPair, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := account + "@" + region
	if p := l.clients[key]; p != nil {
		return p, nil
	}
	if l.base == nil {
		var opts []func(*config.LoadOptions) error
		if l.c.AccessKeyID != "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(l.c.AccessKeyID, l.c.SecretAccessKey, "")))
		}
		if l.c.MaxAttempts > 0 {
			opts = append(opts, config.WithRetryMaxAttempts(l.c.MaxAttempts))
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("awsiid: AWS configuration: %w", err)
		}
		// The SDK's client, unless one is given, honours the environment's
		// proxy and AWS_CA_BUNDLE.
		if l.c.HTTPClient != nil {
			cfg.HTTPClient = l.c.HTTPClient
		}
		cfg.HTTPClient = limitClient{cfg.HTTPClient}
		// What goes wrong is in the error the attestation returns.
		cfg.Logger = logging.Nop{}
		l.base = &cfg
	}
	cfg := l.base.Copy()
	cfg.Region = region
	if l.c.AssumeRole != "" {
		roleARN := "arn:" + PartitionOf(region) + ":iam::" + account + ":role/" + l.c.AssumeRole
		stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = endpoint(l.c.STSEndpoint) })
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, roleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "spiffekit-aws-iid"
		}))
	}
	p := &apiPair{
		ec2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = endpoint(l.c.EC2Endpoint) }),
		iam: iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint = endpoint(l.c.IAMEndpoint) }),
	}
	l.clients[key] = p
	return p, nil
}

// endpoint is nil for "", else a pointer to e.
func endpoint(e string) *string {
	if e == "" {
		return nil
	}
	return &e
}

// selectors looks up the instance of doc, a verified document, checks it
// (the instance the API describes is doc's, pending or running, and,
// unless SkipBlockDevice, still on its first root volume) and returns the
// selectors of its tags, security groups and IAM roles, and its tags by
// key. Any failure is an error, never fewer selectors: an error wrapping
// attest.ErrNodeRejected when what the APIs say refuses the instance,
// another when they could not be asked.
func (l *lookup) selectors(ctx context.Context, doc Document) ([]attest.Selector, map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	apis, err := l.apis(ctx, doc.AccountID, doc.Region)
	if err != nil {
		return nil, nil, err
	}
	out, err := apis.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
		InstanceIds: []string{doc.InstanceID},
		Filters:     []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}}},
	})
	if err != nil {
		if apiErr := smithy.APIError(nil); errors.As(err, &apiErr) && apiErr.ErrorCode() == "InvalidInstanceID.NotFound" {
			return nil, nil, reject(err, "EC2 has no instance %s in %s", doc.InstanceID, doc.Region)
		}
		return nil, nil, fmt.Errorf("awsiid: EC2 DescribeInstances of instance %s in %s: %w", doc.InstanceID, doc.Region, err)
	}
	inst, sels, err := describe(out, doc, l.c.SkipBlockDevice)
	if err != nil {
		return nil, nil, err
	}
	tags := make(map[string]string, len(inst.Tags))
	for _, tag := range inst.Tags {
		tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if l.c.DisableInstanceProfileSelectors || inst.IamInstanceProfile == nil || aws.ToString(inst.IamInstanceProfile.Arn) == "" {
		return sels, tags, nil
	}
	roles, err := l.roles(ctx, apis.iam, doc, inst.IamInstanceProfile)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range roles {
		sels = addSelector(sels, "iamrole:"+r)
	}
	return sels, tags, nil
}

// describe returns the instance out describes, which must be doc's, and
// the selectors of its tags and security groups, after checking its root
// volume unless skipBlockDevice. An error wraps attest.ErrNodeRejected.
func describe(out *ec2.DescribeInstancesOutput, doc Document, skipBlockDevice bool) (*ec2types.Instance, []attest.Selector, error) {
	inst, err := theInstance(out, doc)
	if err != nil {
		return nil, nil, err
	}
	if !skipBlockDevice {
		if err := checkBlockDevice(inst); err != nil {
			return nil, nil, reject(nil, "instance %s: %v", doc.InstanceID, err)
		}
	}
	var sels []attest.Selector
	for _, tag := range inst.Tags {
		sels = addSelector(sels, "tag:"+aws.ToString(tag.Key)+":"+aws.ToString(tag.Value))
	}
	for _, sg := range inst.SecurityGroups {
		if sg.GroupId != nil {
			sels = addSelector(sels, "sg:id:"+*sg.GroupId)
		}
		if sg.GroupName != nil {
			sels = addSelector(sels, "sg:name:"+*sg.GroupName)
		}
	}
	return inst, sels, nil
}

// addSelector appends the aws_iid selector of value to sels, unless a
// selector cannot hold value.
func addSelector(sels []attest.Selector, value string) []attest.Selector {
	sel := attest.Selector{Type: Type, Value: value}
	if sel.Validate() != nil {
		return sels
	}
	return append(sels, sel)
}

// theInstance returns the one instance out describes, which must be doc's
// and owned by doc's account.
func theInstance(out *ec2.DescribeInstancesOutput, doc Document) (*ec2types.Instance, error) {
	var found []ec2types.Instance
	for _, r := range out.Reservations {
		if r.OwnerId != nil && *r.OwnerId != doc.AccountID {
			return nil, reject(nil, "EC2 describes a reservation of account %q for instance %s of account %s", truncate(*r.OwnerId), doc.InstanceID, doc.AccountID)
		}
		found = append(found, r.Instances...)
	}
	switch {
	case len(found) == 0:
		return nil, reject(nil, "instance %s in %s is neither pending nor running", doc.InstanceID, doc.Region)
	case len(found) > 1:
		return nil, reject(nil, "EC2 describes %d instances for instance %s", len(found), doc.InstanceID)
	case aws.ToString(found[0].InstanceId) != doc.InstanceID:
		return nil, reject(nil, "EC2 describes instance %q, not the document's %s", truncate(aws.ToString(found[0].InstanceId)), doc.InstanceID)
	}
	return &found[0], nil
}

// checkBlockDevice checks that inst's root volume, unless it is an
// instance store, was attached within maxAttachSkew of its primary network
// interface (device index 0), which cannot be detached: a root volume
// attached later replaced the one the instance was launched with.
func checkBlockDevice(inst *ec2types.Instance) error {
	var primary *time.Time
	for _, ni := range inst.NetworkInterfaces {
		if a := ni.Attachment; a != nil && a.DeviceIndex != nil && *a.DeviceIndex == 0 {
			primary = a.AttachTime
			break
		}
	}
	if primary == nil {
		return errors.New("EC2 describes no primary network interface with its attach time")
	}
	if inst.RootDeviceType == ec2types.DeviceTypeInstanceStore {
		return nil
	}
	root := aws.ToString(inst.RootDeviceName)
	if root == "" {
		return errors.New("EC2 describes no root device name")
	}
	for _, m := range inst.BlockDeviceMappings {
		if aws.ToString(m.DeviceName) != root {
			continue
		}
		if m.Ebs == nil || m.Ebs.AttachTime == nil {
			return fmt.Errorf("EC2 describes no attach time of the root volume %s", truncate(root))
		}
		skew := m.Ebs.AttachTime.Sub(*primary)
		if skew < 0 {
			skew = -skew
		}
		if skew > maxAttachSkew {
			return fmt.Errorf("the root volume %s was attached %v apart from the primary network interface, more than %v: it was replaced after launch", truncate(root), skew.Round(time.Second), maxAttachSkew)
		}
		return nil
	}
	return fmt.Errorf("EC2 describes no block device mapping for the root device %s", truncate(root))
}

// profileARNRE reads an instance profile's ARN: partition, account, and
// the name after its path.
var profileARNRE = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):iam::([0-9]{12}):instance-profile/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,128})$`)

// parseProfileARN returns the name of the instance profile of arn, which
// must be in doc's account. An error wraps attest.ErrNodeRejected.
func parseProfileARN(arn string, doc Document) (string, error) {
	m := profileARNRE.FindStringSubmatch(arn)
	if m == nil {
		return "", reject(nil, "instance %s: EC2 gives %q as its instance profile, not an instance profile's ARN", doc.InstanceID, truncate(arn))
	}
	if m[2] != doc.AccountID {
		return "", reject(nil, "instance %s: its instance profile %s is of another account", doc.InstanceID, arn)
	}
	return m[3], nil
}

// roles returns the ARNs of the roles of the instance profile of the
// instance of doc, which must be in doc's account, through IAM's
// GetInstanceProfile.
func (l *lookup) roles(ctx context.Context, api *iam.Client, doc Document, profile *ec2types.IamInstanceProfile) ([]string, error) {
	profileARN := aws.ToString(profile.Arn)
	name, err := parseProfileARN(profileARN, doc)
	if err != nil {
		return nil, err
	}
	out, err := api.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("awsiid: IAM GetInstanceProfile %s of instance %s: %w", name, doc.InstanceID, err)
	}
	// A profile of the same name in another account (the credentials'),
	// or one made since under the name, is not the instance's.
	if out.InstanceProfile == nil || aws.ToString(out.InstanceProfile.Arn) != profileARN {
		var got string
		if out.InstanceProfile != nil {
			got = aws.ToString(out.InstanceProfile.Arn)
		}
		return nil, reject(nil, "instance %s: IAM describes instance profile %q, not the instance's %s", doc.InstanceID, truncate(got), profileARN)
	}
	if id := aws.ToString(profile.Id); id != "" && aws.ToString(out.InstanceProfile.InstanceProfileId) != id {
		return nil, reject(nil, "instance %s: IAM describes instance profile %s with ID %q, not the instance's %s: it was made again since", doc.InstanceID, profileARN, truncate(aws.ToString(out.InstanceProfile.InstanceProfileId)), id)
	}
	var roles []string
	for _, r := range out.InstanceProfile.Roles {
		if r.Arn != nil {
			roles = append(roles, *r.Arn)
		}
	}
	return roles, nil
}
