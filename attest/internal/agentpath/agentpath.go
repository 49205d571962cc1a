// Package agentpath runs the agent path templates of the cloud node
// attestors: SPIRE's agent_path_template, a text/template whose output is
// the path of an agent's SPIFFE ID below /spiffekit/agent. The output must
// start with "/" and the attestor's type, so that agents of one attestor
// can never take the IDs of another's, or IDs outside the agents'
// namespace.
package agentpath

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// maxShown bounds how much of a template's output an error quotes.
const maxShown = 128

// Template is a parsed agent path template of one attestor. It is safe for
// concurrent use.
type Template struct {
	attestor string
	t        *template.Template
}

// Parse parses text as the agent path template of the attestor of type
// attestor. A field the data does not have, or a map key it lacks, is an
// error when the template runs (missingkey=error), never an empty string.
func Parse(attestor, text string) (*Template, error) {
	t, err := template.New("agent_path_template").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("agent path template: %w", err)
	}
	return &Template{attestor: attestor, t: t}, nil
}

// ID runs the template on data and returns the agent ID it names in td:
// spiffe://<td>/spiffekit/agent<output>. The output must start with
// "/<attestor>/" and make a valid SPIFFE ID path.
func (t *Template) ID(td spiffeid.TrustDomain, data any) (spiffeid.ID, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return spiffeid.ID{}, fmt.Errorf("agent path template: %w", err)
	}
	path := b.String()
	if !strings.HasPrefix(path, "/"+t.attestor+"/") {
		return spiffeid.ID{}, fmt.Errorf("agent path template: %q does not start with /%s/", truncate(path), t.attestor)
	}
	id, err := spiffeid.FromPath(td, "/spiffekit/agent"+path)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("agent path template: %q: %w", truncate(path), err)
	}
	return id, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > maxShown {
		return s[:maxShown] + "..."
	}
	return s
}
