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
"audience": "spire-gcp-node-attestor", "keys_url": "` + gcpiit.GoogleKeysURL + `", "keys_file": "<JWKS or PEM certificates file>",
"allow_reattestation": false}; SPIRE's use_instance_metadata must be false; present enables it (see README.md)`

// gcpIITConfig is the node_attestors.gcp_iit part of the configuration
// file. projectid_allow_list and agent_path_template are SPIRE's keys;
// SPIRE's keys of the Compute API lookup (use_instance_metadata,
// service_account_file, allowed_label_keys, allowed_metadata_keys,
// max_metadata_value_size) are accepted so that SPIRE's settings carry
// over, but use_instance_metadata must be false: there is no Compute API
// lookup, and the others mean nothing without it.
type gcpIITConfig struct {
	// ProjectIDAllowList: the projects whose instances may attest.
	ProjectIDAllowList []string `json:"projectid_allow_list"`
	// AgentPathTemplate: SPIRE's template of the agent ID's path, below
	// /spiffekit/agent.
	AgentPathTemplate string `json:"agent_path_template"`
	// Audience: the tokens' audience (SPIRE's fixed one by default).
	Audience string `json:"audience"`
	// KeysURL: where Google's keys are fetched.
	KeysURL string `json:"keys_url"`
	// KeysFile: a document of Google's keys, instead of fetching them.
	KeysFile string `json:"keys_file"`
	// AllowReattestation: an instance may attest again while its agent's
	// record exists.
	AllowReattestation bool `json:"allow_reattestation"`

	// SPIRE's keys of the Compute API lookup.
	UseInstanceMetadata  bool     `json:"use_instance_metadata"`
	ServiceAccountFile   string   `json:"service_account_file"`
	AllowedLabelKeys     []string `json:"allowed_label_keys"`
	AllowedMetadataKeys  []string `json:"allowed_metadata_keys"`
	MaxMetadataValueSize int      `json:"max_metadata_value_size"`
}

// newGCPIIT returns the gcp_iit attestor of c, reading its keys file.
func newGCPIIT(c *gcpIITConfig) (*gcpiit.Server, error) {
	if c.UseInstanceMetadata {
		return nil, fmt.Errorf("%s.use_instance_metadata: the Compute API lookup (tag:, sa:, label: and metadata: selectors from the instance) is not supported; set it false", gcpIITKey)
	}
	if c.MaxMetadataValueSize < 0 {
		return nil, fmt.Errorf("%s.max_metadata_value_size must not be negative", gcpIITKey)
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
		AllowReattestation: c.AllowReattestation,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gcpIITKey, err)
	}
	return s, nil
}
