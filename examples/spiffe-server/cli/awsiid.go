package cli

import (
	"fmt"
	"maps"

	"github.com/spiffekit/spiffekit/attest/awsiid"
)

// awsIIDKey is where the configuration file holds the aws_iid node
// attestor's settings, as SPIRE's server configuration names it.
const awsIIDKey = "node_attestors.aws_iid"

const awsIIDHelp = `the aws_iid node attestor (EC2 instance identity documents):
{"account_allow_list": ["<12-digit account ID>"] (required), "region_allow_list": [],
"partition": "aws|aws-cn|aws-us-gov", "rsa2048_certificates": {"<region>": "<PEM file>"},
"signature_certificates": {"<region>": "<PEM file>"}, "allow_reattestation": false,
"agent_path_template": "/{{ .PluginName }}/{{ .AccountID }}/{{ .Region }}/{{ .InstanceID }}",
"access_key_id": "", "secret_access_key": "", "assume_role": "<role name>", "ec2_lookup": false,
"skip_block_device": false, "disable_instance_profile_selectors": false, "ec2_endpoint": "", "iam_endpoint": "",
"sts_endpoint": ""}; present enables it; AWS keys or assume_role or ec2_lookup turn on the EC2 and IAM lookups
(see README.md)`

// awsIIDConfig is the node_attestors.aws_iid part of the configuration
// file. partition, agent_path_template, access_key_id, secret_access_key,
// assume_role, skip_block_device and disable_instance_profile_selectors
// are SPIRE's keys; SPIRE's others (verify_organization, ...) are refused
// as unknown.
type awsIIDConfig struct {
	// AccountAllowList: the accounts whose instances may attest.
	AccountAllowList []string `json:"account_allow_list"`
	// RegionAllowList: if not empty, the only regions allowed.
	RegionAllowList []string `json:"region_allow_list"`
	// Partition: if not empty, the only partition allowed.
	Partition string `json:"partition"`
	// RSA2048Certificates: PEM files by region, added to AWS's shipped
	// certificates of the PKCS #7 form (a region given replaces AWS's).
	RSA2048Certificates map[string]string `json:"rsa2048_certificates"`
	// SignatureCertificates: PEM files by region for the RSA-SHA256 form.
	SignatureCertificates map[string]string `json:"signature_certificates"`
	// AllowReattestation: an instance may attest again while its agent's
	// record exists.
	AllowReattestation bool `json:"allow_reattestation"`
	// AgentPathTemplate: SPIRE's template of the agent ID's path, below
	// /spiffekit/agent.
	AgentPathTemplate string `json:"agent_path_template"`

	// AccessKeyID, SecretAccessKey: the credentials of the EC2 and IAM
	// lookups; giving them turns the lookups on.
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	// AssumeRole: a role name assumed in each instance's account for the
	// lookups; giving it turns them on.
	AssumeRole string `json:"assume_role"`
	// EC2Lookup: turn the lookups on with the SDK's default credentials
	// (environment, shared files, the server's instance role).
	EC2Lookup bool `json:"ec2_lookup"`
	// SkipBlockDevice: do not check that the root volume is the one the
	// instance was launched with.
	SkipBlockDevice bool `json:"skip_block_device"`
	// DisableInstanceProfileSelectors: no iamrole selectors, no IAM call.
	DisableInstanceProfileSelectors bool `json:"disable_instance_profile_selectors"`
	// EC2Endpoint, IAMEndpoint, STSEndpoint: the APIs' endpoints, instead
	// of AWS's of the instance's region.
	EC2Endpoint string `json:"ec2_endpoint"`
	IAMEndpoint string `json:"iam_endpoint"`
	STSEndpoint string `json:"sts_endpoint"`
}

// lookup returns the lookup configuration of c, nil when the lookups are
// off.
func (c *awsIIDConfig) lookup() (*awsiid.LookupConfig, error) {
	if c.AccessKeyID == "" && c.SecretAccessKey == "" && c.AssumeRole == "" && !c.EC2Lookup {
		if c.SkipBlockDevice || c.DisableInstanceProfileSelectors || c.EC2Endpoint != "" || c.IAMEndpoint != "" || c.STSEndpoint != "" {
			return nil, fmt.Errorf("%s: skip_block_device, disable_instance_profile_selectors and the endpoints are for the EC2 and IAM lookups, which are off (give access_key_id and secret_access_key, assume_role, or ec2_lookup)", awsIIDKey)
		}
		return nil, nil
	}
	return &awsiid.LookupConfig{
		AccessKeyID:                     c.AccessKeyID,
		SecretAccessKey:                 c.SecretAccessKey,
		AssumeRole:                      c.AssumeRole,
		SkipBlockDevice:                 c.SkipBlockDevice,
		DisableInstanceProfileSelectors: c.DisableInstanceProfileSelectors,
		EC2Endpoint:                     c.EC2Endpoint,
		IAMEndpoint:                     c.IAMEndpoint,
		STSEndpoint:                     c.STSEndpoint,
	}, nil
}

// newAWSIID returns the aws_iid attestor of c, reading its certificate
// files.
func newAWSIID(c *awsIIDConfig) (*awsiid.Server, error) {
	rsa2048 := awsiid.AWSCertificates()
	extra, err := awsiid.LoadCertificates(c.RSA2048Certificates)
	if err != nil {
		return nil, fmt.Errorf("%s.rsa2048_certificates: %w", awsIIDKey, err)
	}
	maps.Copy(rsa2048, extra)
	sig, err := awsiid.LoadCertificates(c.SignatureCertificates)
	if err != nil {
		return nil, fmt.Errorf("%s.signature_certificates: %w", awsIIDKey, err)
	}
	lookup, err := c.lookup()
	if err != nil {
		return nil, err
	}
	s, err := awsiid.NewServer(awsiid.ServerConfig{
		AccountIDs:            c.AccountAllowList,
		Regions:               c.RegionAllowList,
		Partition:             c.Partition,
		RSA2048Certificates:   rsa2048,
		SignatureCertificates: sig,
		AllowReattestation:    c.AllowReattestation,
		AgentPathTemplate:     c.AgentPathTemplate,
		Lookup:                lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", awsIIDKey, err)
	}
	return s, nil
}
