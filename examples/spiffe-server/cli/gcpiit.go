package cli

import (
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest/gcpiit"
	"github.com/spiffekit/spiffekit/internal/jwkutil"
)

// gcpIITKey is where the configuration file holds the gcp_iit node
// attestor's settings, as SPIRE's server configuration names it.
const gcpIITKey = "node_attestors.gcp_iit"

const gcpIITHelp = `the gcp_iit node attestor (Compute Engine instance identity tokens):
{"projectid_allow_list": ["<project ID>"] (required), "agent_path_template": "/{{ .PluginName }}/{{ .ProjectID }}/{{ .InstanceID }}",
"use_instance_metadata": false, "service_account_file": "<JSON key file>", "allowed_label_keys": [], "allowed_metadata_keys": [],
"max_metadata_value_size": 128, "audience": "spire-gcp-node-attestor", "keys_url": "` + gcpiit.GoogleKeysURL + `",
"keys_file": "<JWKS or PEM certificates file>", "compute_api_url": "` + gcpiit.ComputeAPIURL + `", "allow_reattestation": false};
present enables it (see README.md)`

// gcpIITConfig is the node_attestors.gcp_iit part of the configuration
// file: SPIRE's keys (projectid_allow_list, agent_path_template,
// use_instance_metadata, service_account_file, allowed_label_keys,
// allowed_metadata_keys, max_metadata_value_size) and the attestor's own.
type gcpIITConfig struct {
	// ProjectIDAllowList: the projects whose instances may attest.
	ProjectIDAllowList []string `json:"projectid_allow_list"`
	// AgentPathTemplate: SPIRE's template of the agent ID's path, below
	// /spiffekit/agent.
	AgentPathTemplate string `json:"agent_path_template"`
	// UseInstanceMetadata: read each instance through the Compute API,
	// for tag:, sa:, label: and metadata: selectors.
	UseInstanceMetadata bool `json:"use_instance_metadata"`
	// ServiceAccountFile: the JSON key of the account that reads them
	// (default: Application Default Credentials).
	ServiceAccountFile string `json:"service_account_file"`
	// AllowedLabelKeys, AllowedMetadataKeys: the keys that become
	// selectors.
	AllowedLabelKeys    []string `json:"allowed_label_keys"`
	AllowedMetadataKeys []string `json:"allowed_metadata_keys"`
	// MaxMetadataValueSize: the longest allowed metadata value (0: 128).
	MaxMetadataValueSize int `json:"max_metadata_value_size"`
	// ComputeAPIURL: the Compute API's root.
	ComputeAPIURL string `json:"compute_api_url"`
	// Audience: the tokens' audience (SPIRE's fixed one by default).
	Audience string `json:"audience"`
	// KeysURL: where Google's keys are fetched.
	KeysURL string `json:"keys_url"`
	// KeysFile: a document of Google's keys, instead of fetching them.
	KeysFile string `json:"keys_file"`
	// AllowReattestation: an instance may attest again while its agent's
	// record exists.
	AllowReattestation bool `json:"allow_reattestation"`
}

// newGCPIIT returns the gcp_iit attestor of c, reading its keys file.
func newGCPIIT(c *gcpIITConfig) (*gcpiit.Server, error) {
	if !c.UseInstanceMetadata && (c.ServiceAccountFile != "" || c.ComputeAPIURL != "" || len(c.AllowedLabelKeys) > 0 ||
		len(c.AllowedMetadataKeys) > 0 || c.MaxMetadataValueSize != 0) {
		return nil, fmt.Errorf("%s: service_account_file, compute_api_url, allowed_label_keys, allowed_metadata_keys and max_metadata_value_size are for use_instance_metadata, which is off", gcpIITKey)
	}
	var md *gcpiit.InstanceMetadataConfig
	if c.UseInstanceMetadata {
		md = &gcpiit.InstanceMetadataConfig{
			ServiceAccountFile:   c.ServiceAccountFile,
			AllowedLabelKeys:     c.AllowedLabelKeys,
			AllowedMetadataKeys:  c.AllowedMetadataKeys,
			MaxMetadataValueSize: c.MaxMetadataValueSize,
			Endpoint:             c.ComputeAPIURL,
		}
	}
	var keys []byte
	if c.KeysFile != "" {
		if c.KeysURL != "" {
			return nil, fmt.Errorf("%s: give keys_file or keys_url, not both", gcpIITKey)
		}
		var err error
		if keys, err = jwkutil.ReadFile(c.KeysFile); err != nil {
			return nil, fmt.Errorf("%s.keys_file: %w", gcpIITKey, err)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("%s.keys_file: %w", gcpIITKey, errors.New("the file is empty"))
		}
	}
	s, err := gcpiit.NewServer(gcpiit.ServerConfig{
		ProjectIDs:         c.ProjectIDAllowList,
		Audience:           c.Audience,
		Keys:               keys,
		KeysURL:            c.KeysURL,
		AgentPathTemplate:  c.AgentPathTemplate,
		InstanceMetadata:   md,
		AllowReattestation: c.AllowReattestation,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gcpIITKey, err)
	}
	return s, nil
}
