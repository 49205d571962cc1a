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
"signature_certificates": {"<region>": "<PEM file>"}, "allow_reattestation": false};
present enables it (see README.md)`

// awsIIDConfig is the node_attestors.aws_iid part of the configuration
// file. partition is SPIRE's key; SPIRE's others (AWS credentials,
// skip_block_device, agent_path_template, ...) are refused as unknown.
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
	s, err := awsiid.NewServer(awsiid.ServerConfig{
		AccountIDs:            c.AccountAllowList,
		Regions:               c.RegionAllowList,
		Partition:             c.Partition,
		RSA2048Certificates:   rsa2048,
		SignatureCertificates: sig,
		AllowReattestation:    c.AllowReattestation,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", awsIIDKey, err)
	}
	return s, nil
}
