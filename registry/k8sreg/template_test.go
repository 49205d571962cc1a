package k8sreg_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/spiffekit/spiffekit/registry/k8sreg"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestParseTemplates(t *testing.T) {
	ts, err := k8sreg.ParseTemplates(strings.NewReader(`[
	  {"name": "default",
	   "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
	   "podSelector": {"matchLabels": {"spiffe": "on"}},
	   "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
	   "dnsNameTemplates": ["{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc"],
	   "workloadSelectorTemplates": ["k8s:sa:{{ .PodSpec.ServiceAccountName }}"],
	   "federatesWith": ["partner.example"],
	   "ttl": "1h", "jwtTtl": "5m0s", "hint": "internal"}
	]`), td)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	assert.Equal(t, "default", ts[0].Name)
	assert.Equal(t, "1h0m0s", ts[0].TTL.Duration.String())
	assert.Equal(t, "5m0s", ts[0].JWTTTL.Duration.String())
	assert.Equal(t, map[string]string{"spiffe": "on"}, ts[0].PodSelector.MatchLabels)

	tests := []struct{ name, doc, want string }{
		{"not JSON", `{`, "templates file"},
		{"an object, not a list", `{"name": "x"}`, "templates file"},
		{"data after", `[] []`, "data after the array"},
		{"unknown key", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "admin": true}]`, `unknown field "admin"`},
		{"no name", `[{"spiffeIDTemplate": "spiffe://example.org/a"}]`, "name is missing"},
		{"no ID template", `[{"name": "a", "spiffeIDTemplate": " "}]`, "spiffeIDTemplate is missing"},
		{"names taken", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a"}, {"name": "a", "spiffeIDTemplate": "spiffe://example.org/b"}]`, `name "a" is taken`},
		{"bad ID template", `[{"name": "a", "spiffeIDTemplate": "{{ .Nope "}]`, "spiffeIDTemplate"},
		{"bad DNS template", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "dnsNameTemplates": ["{{"]}]`, "dnsNameTemplates[0]"},
		{"bad selector template", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "workloadSelectorTemplates": ["{{ end }}"]}]`, "workloadSelectorTemplates[0]"},
		{"bad trust domain", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "federatesWith": ["Not A Domain"]}]`, "federatesWith"},
		{"negative TTL", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "ttl": "-1s"}]`, "ttl -1s"},
		{"TTL too short", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "jwtTtl": "10ms"}]`, "jwtTtl 10ms"},
		{"bad TTL", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "ttl": "soon"}]`, "templates file"},
		{"bad pod selector", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "podSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}}]`, "podSelector"},
		{"bad namespace selector", `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "namespaceSelector": {"matchLabels": {"k": "bad value!"}}}]`, "namespaceSelector"},
		{"hint too long", fmt.Sprintf(`[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "hint": %q}]`, strings.Repeat("h", 1025)), "hint is longer"},
		{"too many DNS names", fmt.Sprintf(`[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "dnsNameTemplates": [%s]}]`, repeat(`"x"`, 65)), "dnsNameTemplates; at most"},
		{"too many selectors", fmt.Sprintf(`[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "workloadSelectorTemplates": [%s]}]`, repeat(`"k8s:a:b"`, 63)), "workloadSelectorTemplates; at most"},
		{"too many trust domains", fmt.Sprintf(`[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/a", "federatesWith": [%s]}]`, repeat(`"a.b"`, 65)), "trust domains; at most"},
		{"too many templates", "[" + repeat(`{}`, k8sreg.MaxTemplates+1) + "]", "templates; at most"},
		{"too large", "[" + strings.Repeat(" ", k8sreg.MaxConfigSize) + "]", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k8sreg.ParseTemplates(strings.NewReader(tt.doc), td)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "k8sreg: "), err.Error())
		})
	}
	_, err = k8sreg.ParseTemplates(errReader{}, td)
	require.ErrorIs(t, err, errBroken)
}

func repeat(s string, n int) string { return strings.TrimSuffix(strings.Repeat(s+",", n), ",") }

var errBroken = errors.New("broken")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

func FuzzParseTemplates(f *testing.F) {
	f.Add([]byte(`[{"name": "a", "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/{{ .PodMeta.Name }}", "ttl": "1h"}]`))
	f.Add([]byte(`[{"name": "a", "spiffeIDTemplate": "x", "podSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ts, err := k8sreg.ParseTemplates(bytes.NewReader(doc), td)
		if err != nil {
			return
		}
		// What parses makes a controller.
		_, err = k8sreg.New(k8sreg.Config{Client: &kubernetes.Clientset{}, Store: memstore.New(memstore.Config{}), TrustDomain: td, ClusterName: "c", Templates: ts})
		require.NoError(t, err)
	})
}

func TestNew(t *testing.T) {
	store := memstore.New(memstore.Config{})
	client := &kubernetes.Clientset{}
	ok := k8sreg.Config{Client: client, Store: store, TrustDomain: td, ClusterName: "prod"}
	_, err := k8sreg.New(ok)
	require.NoError(t, err)
	tests := []struct {
		name string
		edit func(*k8sreg.Config)
		want string
	}{
		{"no client", func(c *k8sreg.Config) { c.Client = nil }, "Client is missing"},
		{"no store", func(c *k8sreg.Config) { c.Store = nil }, "Store is missing"},
		{"no trust domain", func(c *k8sreg.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "TrustDomain is missing"},
		{"no cluster", func(c *k8sreg.Config) { c.ClusterName = "" }, "ClusterName is missing"},
		{"cluster not a path segment", func(c *k8sreg.Config) { c.ClusterName = "a/b" }, "cannot be part of an agent ID"},
		{"negative workers", func(c *k8sreg.Config) { c.Workers = -1 }, "Workers is negative"},
		{"bad template", func(c *k8sreg.Config) { c.Templates = []k8sreg.Template{{Name: "x"}} }, "spiffeIDTemplate is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			_, err := k8sreg.New(c)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func ExampleParseTemplates() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	templates, err := k8sreg.ParseTemplates(strings.NewReader(`[{
		"name": "by-service-account",
		"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
		"namespaceSelector": {"matchLabels": {"spiffe.io/register": "true"}},
		"dnsNameTemplates": ["{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc"],
		"ttl": "1h"
	}]`), td)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	for _, t := range templates {
		fmt.Println(t.Name, t.TTL.Duration)
	}
	// Output: by-service-account 1h0m0s
}
