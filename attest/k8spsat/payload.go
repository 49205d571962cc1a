package k8spsat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spiffekit/spiffekit/attest"
)

// Type is the name of the k8s_psat node attestor.
const Type = "k8s_psat"

// MaxClusterName bounds a cluster name: it is one segment of the agent ID
// and part of a selector, and a name is no place for more.
const MaxClusterName = 253

// Payload is the agent's message: the JSON object {"cluster": ...,
// "token": ...} that SPIRE's k8s_psat agent sends too, so that agents and
// servers of either project can attest to each other. Its String and
// GoString methods leave the token out, so that a Payload logged or
// formatted never shows it.
type Payload struct {
	// Cluster names the cluster the node belongs to.
	Cluster string `json:"cluster"`
	// Token is the agent pod's projected service account token: a bearer
	// credential.
	Token string `json:"token"`
}

// Marshal encodes p as JSON.
func (p Payload) Marshal() []byte {
	b, _ := json.Marshal(p) // two strings always marshal
	return b
}

// String describes p without its token.
func (p Payload) String() string {
	return fmt.Sprintf("k8s_psat payload for cluster %q with a token of %d bytes", p.Cluster, len(p.Token))
}

// GoString is String: %#v shows no token either.
func (p Payload) GoString() string { return p.String() }

// ParsePayload decodes the agent's message: one JSON object with a valid
// cluster name ([ValidateClusterName]) and a non-empty token, and nothing
// else, of at most [attest.MaxNodePayload] bytes. Its errors never hold
// the token.
func ParsePayload(b []byte) (Payload, error) {
	if len(b) > attest.MaxNodePayload {
		return Payload{}, fmt.Errorf("k8spsat: payload of %d bytes is larger than %d", len(b), attest.MaxNodePayload)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Payload
	if err := dec.Decode(&p); err != nil {
		// json's syntax and type errors name offsets and Go types, never
		// the text of a value.
		return Payload{}, fmt.Errorf("k8spsat: malformed payload: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Payload{}, errors.New("k8spsat: malformed payload: data after the JSON object")
	}
	if err := ValidateClusterName(p.Cluster); err != nil {
		return Payload{}, err
	}
	if p.Token == "" {
		return Payload{}, errors.New("k8spsat: payload has no token")
	}
	return p, nil
}

// ValidateClusterName accepts a cluster name that can be a path segment of
// an agent ID and part of a selector: 1 to [MaxClusterName] bytes of ASCII
// letters, digits, '-', '_' and '.', not "." or "..".
func ValidateClusterName(name string) error {
	switch {
	case name == "":
		return errors.New("k8spsat: no cluster name")
	case len(name) > MaxClusterName:
		return fmt.Errorf("k8spsat: cluster name of %d bytes is longer than %d", len(name), MaxClusterName)
	case name == "." || name == "..":
		return fmt.Errorf("k8spsat: cluster name %q is not allowed", name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("k8spsat: cluster name %q: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	return nil
}
