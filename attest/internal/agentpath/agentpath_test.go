package agentpath

import (
	"strings"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

type data struct {
	Zone string
	Tags map[string]string
}

func TestID(t *testing.T) {
	tmpl, err := Parse("cloud", "/cloud/{{ .Zone }}/{{ .Tags.name }}")
	if err != nil {
		t.Fatal(err)
	}
	id, err := tmpl.ID(td, data{Zone: "z1", Tags: map[string]string{"name": "web"}})
	if err != nil || id.String() != "spiffe://example.org/spiffekit/agent/cloud/z1/web" {
		t.Fatalf("ID: %v, %v", id, err)
	}
	for name, tc := range map[string]struct {
		text string
		d    any
		err  string
	}{
		"missing key":        {"/cloud/{{ .Tags.team }}", data{Tags: map[string]string{}}, `map has no entry for key "team"`},
		"unknown field":      {"/cloud/{{ .Region }}", data{}, "can't evaluate field Region"},
		"another attestor":   {"/other/{{ .Zone }}", data{Zone: "z"}, `"/other/z" does not start with /cloud/`},
		"the prefix alone":   {"/cloud", data{}, "does not start with /cloud/"},
		"an empty segment":   {"/cloud/{{ .Zone }}/x", data{}, "empty segments"},
		"a dot segment":      {"/cloud/{{ .Zone }}", data{Zone: ".."}, "dot segments"},
		"a bad character":    {"/cloud/{{ .Zone }}", data{Zone: "a b"}, "characters are limited"},
		"a long bad output":  {"/x{{ .Zone }}", data{Zone: strings.Repeat("a", 300)}, `..." does not start with /cloud/`},
		"parent of the root": {"/cloud/../../server", data{}, "dot segments"},
	} {
		tmpl, err := Parse("cloud", tc.text)
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		if _, err := tmpl.ID(td, tc.d); err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "agent path template: ") {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.err)
		}
	}
	if _, err := Parse("cloud", "/cloud/{{ .Zone"); err == nil || !strings.HasPrefix(err.Error(), "agent path template: ") {
		t.Fatalf("Parse of a broken template: %v", err)
	}
}
