package k8sreg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxConfigSize is the largest templates file [ParseTemplates] reads.
const MaxConfigSize = 1 << 20

// MaxTemplates is the largest number of templates one controller takes.
const MaxTemplates = 256

// A Template says which pods get which entry: the spec of a
// spire-controller-manager ClusterSPIFFEID, with its JSON field names, so
// that a ClusterSPIFFEID's spec carries over as it is written.
//
// The string templates are Go text/template templates. They see the
// fields of ClusterSPIFFEID's templates: .TrustDomain (the trust domain's
// name), .ClusterName, .ClusterDomain, .PodMeta and .PodSpec (the pod's
// metav1.ObjectMeta and corev1.PodSpec), .NodeMeta and .NodeSpec (those
// of its node). A key missing from a map is an error when the template
// names it as a field: {{ .PodMeta.Labels.app }} gives no entry for a pod
// without that label, rather than an ID with "<no value>" in it, while
// {{ index .PodMeta.Labels "app" }} gives the empty string.
type Template struct {
	// Name names the template in logs and errors. Required, unique.
	Name string `json:"name"`
	// SPIFFEIDTemplate renders the SPIFFE ID of the pod's entry; it must
	// be in the controller's trust domain. Required.
	SPIFFEIDTemplate string `json:"spiffeIDTemplate"`
	// NamespaceSelector, if set, restricts the template to the pods of
	// namespaces whose labels it selects.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// PodSelector, if set, restricts the template to the pods whose
	// labels it selects.
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
	// DNSNameTemplates render the entry's DNS names; one that renders
	// empty is left out.
	DNSNameTemplates []string `json:"dnsNameTemplates,omitempty"`
	// WorkloadSelectorTemplates render selectors ("type:value") added to
	// the ones every entry has: k8s:ns:<namespace> and
	// k8s:pod-uid:<pod UID>.
	WorkloadSelectorTemplates []string `json:"workloadSelectorTemplates,omitempty"`
	// FederatesWith names the trust domains whose bundles the pods get.
	FederatesWith []string `json:"federatesWith,omitempty"`
	// TTL is the X509-SVID lifetime; zero means the server's default.
	TTL metav1.Duration `json:"ttl,omitzero"`
	// JWTTTL is the JWT-SVID lifetime; zero means the server's default.
	JWTTTL metav1.Duration `json:"jwtTtl,omitzero"`
	// Hint is the entry's hint.
	Hint string `json:"hint,omitempty"`
}

// ParseTemplates reads a templates file: a JSON array of [Template]s, at
// most [MaxConfigSize] bytes and [MaxTemplates] templates. Unknown keys
// are refused (a ClusterSPIFFEID's admin, downstream, fallback and
// className have no equivalent here), and so is anything [Compile]
// refuses given td.
func ParseTemplates(r io.Reader, td spiffeid.TrustDomain) ([]Template, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("k8sreg: reading templates: %w", err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("k8sreg: templates file is larger than %d bytes", MaxConfigSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ts []Template
	if err := dec.Decode(&ts); err != nil {
		return nil, fmt.Errorf("k8sreg: templates file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("k8sreg: templates file: data after the array")
	}
	if _, err := compile(ts, td); err != nil {
		return nil, err
	}
	return ts, nil
}

// compiled is a Template ready to render.
type compiled struct {
	name      string
	id        *template.Template
	nsSel     labels.Selector // nil: every namespace
	podSel    labels.Selector // nil: every pod
	dns       []*template.Template
	selectors []*template.Template
	fed       []spiffeid.TrustDomain
	x509TTL   time.Duration
	jwtTTL    time.Duration
	hint      string
}

// compile checks the templates and parses them.
func compile(ts []Template, td spiffeid.TrustDomain) ([]compiled, error) {
	if len(ts) > MaxTemplates {
		return nil, fmt.Errorf("k8sreg: %d templates; at most %d are allowed", len(ts), MaxTemplates)
	}
	out := make([]compiled, 0, len(ts))
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		c, err := compileOne(t)
		if err != nil {
			return nil, fmt.Errorf("k8sreg: template %d (%q): %w", i, t.Name, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("k8sreg: template %d: name %q is taken by an earlier template", i, t.Name)
		}
		seen[t.Name] = true
		out = append(out, c)
	}
	return out, nil
}

func compileOne(t Template) (compiled, error) {
	c := compiled{name: t.Name, hint: t.Hint, x509TTL: t.TTL.Duration, jwtTTL: t.JWTTTL.Duration}
	var err error
	switch {
	case t.Name == "":
		return c, errors.New("name is missing")
	case strings.TrimSpace(t.SPIFFEIDTemplate) == "":
		return c, errors.New("spiffeIDTemplate is missing")
	case len(t.Hint) > registry.MaxHintLen:
		return c, fmt.Errorf("hint is longer than %d bytes", registry.MaxHintLen)
	case len(t.DNSNameTemplates) > registry.MaxDNSNames:
		return c, fmt.Errorf("%d dnsNameTemplates; at most %d are allowed", len(t.DNSNameTemplates), registry.MaxDNSNames)
	case len(t.WorkloadSelectorTemplates) > registry.MaxSelectors-2:
		return c, fmt.Errorf("%d workloadSelectorTemplates; at most %d are allowed", len(t.WorkloadSelectorTemplates), registry.MaxSelectors-2)
	case len(t.FederatesWith) > registry.MaxFederatesWith:
		return c, fmt.Errorf("federates with %d trust domains; at most %d are allowed", len(t.FederatesWith), registry.MaxFederatesWith)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ttl", t.TTL.Duration}, {"jwtTtl", t.JWTTTL.Duration}} {
		if d.v < 0 || d.v > 0 && d.v < registry.MinSVIDTTL {
			return c, fmt.Errorf("%s %v must be zero (the server's default) or at least %v", d.name, d.v, registry.MinSVIDTTL)
		}
	}
	if c.id, err = parse("spiffeIDTemplate", t.SPIFFEIDTemplate); err != nil {
		return c, err
	}
	for i, s := range t.DNSNameTemplates {
		tmpl, err := parse(fmt.Sprintf("dnsNameTemplates[%d]", i), s)
		if err != nil {
			return c, err
		}
		c.dns = append(c.dns, tmpl)
	}
	for i, s := range t.WorkloadSelectorTemplates {
		tmpl, err := parse(fmt.Sprintf("workloadSelectorTemplates[%d]", i), s)
		if err != nil {
			return c, err
		}
		c.selectors = append(c.selectors, tmpl)
	}
	for _, name := range t.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return c, fmt.Errorf("federatesWith %q: %w", name, err)
		}
		c.fed = append(c.fed, td)
	}
	if t.NamespaceSelector != nil {
		if c.nsSel, err = metav1.LabelSelectorAsSelector(t.NamespaceSelector); err != nil {
			return c, fmt.Errorf("namespaceSelector: %w", err)
		}
	}
	if t.PodSelector != nil {
		if c.podSel, err = metav1.LabelSelectorAsSelector(t.PodSelector); err != nil {
			return c, fmt.Errorf("podSelector: %w", err)
		}
	}
	return c, nil
}

func parse(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// data is what the templates see, with ClusterSPIFFEID's field names.
type data struct {
	TrustDomain   string
	ClusterName   string
	ClusterDomain string
	PodMeta       *metav1.ObjectMeta
	PodSpec       *corev1.PodSpec
	NodeMeta      *metav1.ObjectMeta
	NodeSpec      *corev1.NodeSpec
}

// maxRendered bounds what one template may render, so that a template
// looping over a pod's labels cannot make the controller hold megabytes.
const maxRendered = registry.MaxIDLen

type limitedBuffer struct{ strings.Builder }

var errTooLong = fmt.Errorf("renders more than %d bytes", maxRendered)

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

func render(t *template.Template, d *data) (string, error) {
	var b limitedBuffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	return strings.TrimSpace(b.String()), nil
}

// entry renders the template's entry for the pod, parented by parent. The
// selectors k8s:ns and k8s:pod-uid tie the entry to this very pod, as the
// k8s workload attestor reports it.
func (c *compiled) entry(td spiffeid.TrustDomain, d *data, parent spiffeid.ID) (registry.Entry, error) {
	s, err := render(c.id, d)
	if err != nil {
		return registry.Entry{}, err
	}
	id, err := spiffeid.FromString(s)
	if err != nil {
		return registry.Entry{}, fmt.Errorf("spiffeIDTemplate gave %q: %w", s, err)
	}
	if !id.MemberOf(td) {
		return registry.Entry{}, fmt.Errorf("spiffeIDTemplate gave %q, outside trust domain %q", s, td.Name())
	}
	e := registry.Entry{
		SPIFFEID:      id,
		ParentID:      parent,
		X509SVIDTTL:   c.x509TTL,
		JWTSVIDTTL:    c.jwtTTL,
		Hint:          c.hint,
		FederatesWith: append([]spiffeid.TrustDomain(nil), c.fed...),
		Selectors: []attest.Selector{
			{Type: "k8s", Value: "ns:" + d.PodMeta.Namespace},
			{Type: "k8s", Value: podUIDPrefix + string(d.PodMeta.UID)},
		},
	}
	for _, t := range c.dns {
		name, err := render(t, d)
		if err != nil {
			return registry.Entry{}, err
		}
		if name != "" && !slices.Contains(e.DNSNames, name) {
			e.DNSNames = append(e.DNSNames, name)
		}
	}
	for _, t := range c.selectors {
		s, err := render(t, d)
		if err != nil {
			return registry.Entry{}, err
		}
		sel, err := attest.ParseSelector(s)
		if err != nil {
			return registry.Entry{}, fmt.Errorf("%s: %w", t.Name(), err)
		}
		if !slices.Contains(e.Selectors, sel) {
			e.Selectors = append(e.Selectors, sel)
		}
	}
	if err := e.Validate(); err != nil {
		return registry.Entry{}, err
	}
	return e, nil
}
