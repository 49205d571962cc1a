package k8sreg_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/k8sreg"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var td = spiffeid.RequireTrustDomainFromString("example.org")

// inNamespace restricts a template to one namespace, so that tests sharing
// the API server see only their own pods.
func inNamespace(ns string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
}

// run starts a controller and returns it; it is stopped, and Run's result
// checked, when the test ends (or when the returned stop is called).
func run(t *testing.T, c k8sreg.Config) (*k8sreg.Controller, func()) {
	t.Helper()
	if c.TrustDomain.IsZero() {
		c.TrustDomain = td
	}
	if c.ClusterName == "" {
		c.ClusterName = "prod"
	}
	ctl, err := k8sreg.New(c)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(time.Minute):
			t.Error("Run did not return within a minute of its context's end")
		}
	}
	t.Cleanup(stop)
	return ctl, stop
}

// entries lists the whole store.
func entries(t testing.TB, s k8sreg.Store) []registry.Entry {
	t.Helper()
	es, _, err := s.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	return es
}

// waitFor waits, a bounded time, until cond holds of the store's entries.
func waitFor(t testing.TB, s k8sreg.Store, what string, cond func([]registry.Entry) bool) []registry.Entry {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		es := entries(t, s)
		if cond(es) {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s; the store holds %d entries: %v", what, len(es), es)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ofPod returns the entries with the pod's k8s:pod-uid selector.
func ofPod(es []registry.Entry, pod *corev1.Pod) []registry.Entry {
	var out []registry.Entry
	sel := attest.Selector{Type: "k8s", Value: "pod-uid:" + string(pod.UID)}
	for _, e := range es {
		for _, s := range e.Selectors {
			if s == sel {
				out = append(out, e)
			}
		}
	}
	return out
}

func ids(es []registry.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.SPIFFEID.String())
	}
	return out
}

func agentID(node *corev1.Node) spiffeid.ID {
	return spiffeid.RequireFromString("spiffe://example.org/spiffekit/agent/k8s_psat/prod/" + string(node.UID))
}

func relabel(t testing.TB, c *kubetest.Cluster, pod *corev1.Pod, labels map[string]string) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(pod.Namespace).Get(t.Context(), pod.Name, metav1.GetOptions{})
	require.NoError(t, err)
	p.Labels = labels
	p, err = c.Client.CoreV1().Pods(pod.Namespace).Update(t.Context(), p, metav1.UpdateOptions{})
	require.NoError(t, err)
	return p
}

func TestEntriesFollowPods(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t)) // after the client's connection to the API server is up
	c.ServiceAccount(t, ns, "web")
	node := c.Node(t, nil, "")
	store := memstore.New(memstore.Config{})

	// A foreign entry for a pod of the test, and one for no pod: the
	// controller must leave both alone.
	foreign, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/by-hand"), ParentID: agentID(node),
		Selectors: []attest.Selector{{Type: "k8s", Value: "ns:" + ns}},
	})
	require.NoError(t, err)

	_, _ = run(t, k8sreg.Config{Client: c.Client, Store: store, Templates: []k8sreg.Template{
		{
			Name:              "by-sa",
			SPIFFEIDTemplate:  "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
			NamespaceSelector: inNamespace(ns),
		},
		{
			Name:                      "by-app",
			SPIFFEIDTemplate:          `spiffe://{{ .TrustDomain }}/{{ .ClusterName }}/app/{{ index .PodMeta.Labels "app" }}`,
			NamespaceSelector:         inNamespace(ns),
			PodSelector:               &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
			DNSNameTemplates:          []string{`{{ index .PodMeta.Labels "app" }}.{{ .PodMeta.Namespace }}.svc`, `{{ index .PodMeta.Labels "version" }}.{{ index .PodMeta.Labels "app" }}`},
			WorkloadSelectorTemplates: []string{"k8s:sa:{{ .PodSpec.ServiceAccountName }}"},
			FederatesWith:             []string{"partner.example", "another.example"},
			TTL:                       metav1.Duration{Duration: time.Hour},
			JWTTTL:                    metav1.Duration{Duration: 5 * time.Minute},
			Hint:                      "external",
		},
	}})

	web := c.Pod(t, ns, "web", node, map[string]string{"app": "web", "version": "v1"})
	plain := c.Pod(t, ns, "web", node, nil)

	es := waitFor(t, store, "three entries and the foreign one", func(es []registry.Entry) bool { return len(es) == 4 })
	assert.ElementsMatch(t, []string{
		"spiffe://example.org/ns/" + ns + "/sa/web",
		"spiffe://example.org/prod/app/web",
	}, ids(ofPod(es, web)))
	assert.Equal(t, []string{"spiffe://example.org/ns/" + ns + "/sa/web"}, ids(ofPod(es, plain)))
	for _, e := range ofPod(es, web) {
		assert.Equal(t, agentID(node), e.ParentID, "parented by the agent of the pod's node")
		if e.SPIFFEID.Path() != "/prod/app/web" {
			assert.Equal(t, []attest.Selector{{Type: "k8s", Value: "ns:" + ns}, {Type: "k8s", Value: "pod-uid:" + string(web.UID)}}, e.Selectors)
			assert.Empty(t, e.DNSNames)
			continue
		}
		assert.Equal(t, []attest.Selector{{Type: "k8s", Value: "ns:" + ns}, {Type: "k8s", Value: "pod-uid:" + string(web.UID)}, {Type: "k8s", Value: "sa:web"}}, e.Selectors)
		assert.Equal(t, []string{"web." + ns + ".svc", "v1.web"}, e.DNSNames)
		assert.Equal(t, []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("another.example"), spiffeid.RequireTrustDomainFromString("partner.example")}, e.FederatesWith)
		assert.Equal(t, time.Hour, e.X509SVIDTTL)
		assert.Equal(t, 5*time.Minute, e.JWTSVIDTTL)
		assert.Equal(t, "external", e.Hint)
		assert.True(t, k8sreg.OwnedBy(e, "prod"))
		assert.False(t, k8sreg.OwnedBy(e, "staging"))
	}
	assert.False(t, k8sreg.OwnedBy(foreign, "prod"))

	// A label that a DNS name template reads changes the entry in place.
	var before registry.Entry
	for _, e := range ofPod(es, web) {
		if e.SPIFFEID.Path() == "/prod/app/web" {
			before = e
		}
	}
	web = relabel(t, c, web, map[string]string{"app": "web", "version": "v2"})
	es = waitFor(t, store, "the DNS name of v2", func(es []registry.Entry) bool {
		for _, e := range es {
			if e.ID == before.ID && len(e.DNSNames) == 2 && e.DNSNames[1] == "v2.web" {
				return true
			}
		}
		return false
	})
	assert.Len(t, es, 4)

	// A label the SPIFFE ID template reads replaces the entry.
	web = relabel(t, c, web, map[string]string{"app": "api", "version": "v2"})
	es = waitFor(t, store, "the entry of app api", func(es []registry.Entry) bool {
		got := ids(ofPod(es, web))
		return len(got) == 2 && (got[0] == "spiffe://example.org/prod/app/api" || got[1] == "spiffe://example.org/prod/app/api")
	})
	assert.Len(t, es, 4)

	// A pod the selector no longer selects loses that entry.
	relabel(t, c, web, nil)
	waitFor(t, store, "the app entry gone", func(es []registry.Entry) bool { return len(ofPod(es, web)) == 1 })

	// Deleted pods lose their entries; the foreign one stays.
	c.DeletePod(t, web)
	c.DeletePod(t, plain)
	es = waitFor(t, store, "the pods' entries gone", func(es []registry.Entry) bool { return len(es) == 1 })
	assert.Equal(t, foreign.ID, es[0].ID)
	assert.Equal(t, foreign.Revision, es[0].Revision, "the foreign entry is untouched")
}

func TestNamespaceAndNodeChanges(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t)) // after the client's connection to the API server is up
	c.ServiceAccount(t, ns, "sa")
	node := c.Node(t, map[string]string{"zone": "a"}, "")
	store := memstore.New(memstore.Config{})
	ctl, _ := run(t, k8sreg.Config{Client: c.Client, Store: store, Templates: []k8sreg.Template{{
		Name:             "zoned",
		SPIFFEIDTemplate: `spiffe://example.org/zone/{{ index .NodeMeta.Labels "zone" }}/{{ .PodMeta.Name }}`,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
			"kubernetes.io/metadata.name": ns, "spiffe": "on",
		}},
	}}})
	pod := c.Pod(t, ns, "sa", node, nil)

	// The namespace is not selected yet; labelling it selects its pods.
	nsObj, err := c.Client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	require.NoError(t, err)
	nsObj.Labels["spiffe"] = "on"
	nsObj, err = c.Client.CoreV1().Namespaces().Update(t.Context(), nsObj, metav1.UpdateOptions{})
	require.NoError(t, err)
	es := waitFor(t, store, "the pod's entry", func(es []registry.Entry) bool { return len(es) == 1 })
	assert.Equal(t, "/zone/a/"+pod.Name, es[0].SPIFFEID.Path())

	// A node label the template reads changes the entry.
	n, err := c.Client.CoreV1().Nodes().Get(t.Context(), node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	n.Labels["zone"] = "b"
	_, err = c.Client.CoreV1().Nodes().Update(t.Context(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
	waitFor(t, store, "the entry of zone b", func(es []registry.Entry) bool {
		return len(es) == 1 && es[0].SPIFFEID.Path() == "/zone/b/"+pod.Name
	})

	// A node that goes takes its agent's entries with it.
	require.NoError(t, c.Client.CoreV1().Nodes().Delete(t.Context(), node.Name, metav1.DeleteOptions{}))
	waitFor(t, store, "no entries", func(es []registry.Entry) bool { return len(es) == 0 })

	// A node of the same name, made again, has another UID: its agent is
	// another, and the entry is parented by it.
	again, err := c.Client.CoreV1().Nodes().Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: map[string]string{"zone": "c"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	es = waitFor(t, store, "the entry under the new node", func(es []registry.Entry) bool { return len(es) == 1 })
	assert.Equal(t, agentID(again), es[0].ParentID)

	// Unlabelling the namespace removes the entry.
	delete(nsObj.Labels, "spiffe")
	_, err = c.Client.CoreV1().Namespaces().Update(t.Context(), nsObj, metav1.UpdateOptions{})
	require.NoError(t, err)
	waitFor(t, store, "no entries", func(es []registry.Entry) bool { return len(es) == 0 })
	st := statsWhen(t, ctl, func(st k8sreg.Stats) bool { return st.Entries == 0 && st.Creates == 3 && st.Deletes == 3 })
	assert.Equal(t, 0, st.Entries)
	assert.Equal(t, uint64(3), st.Creates, "zone a, zone b (another ID), zone c under the new node")
	assert.Equal(t, uint64(3), st.Deletes)
}

// statsWhen returns ctl's Stats once cond holds of them, or after a minute
// (for the caller's assertions to report): the controller counts a write,
// and drops a deleted entry from its index, after the store has it, so
// that a store seen up to date may be a moment ahead of the Stats.
func statsWhen(t *testing.T, ctl *k8sreg.Controller, cond func(k8sreg.Stats) bool) k8sreg.Stats {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := ctl.Stats()
		if cond(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openSQLite(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: path})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRestartResyncsFromItsEntries(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t)) // after the client's connection to the API server is up
	c.ServiceAccount(t, ns, "sa")
	node := c.Node(t, nil, "")
	path := filepath.Join(t.TempDir(), "registry.db")
	store := openSQLite(t, path)
	cfg := k8sreg.Config{Client: c.Client, Store: store, Templates: []k8sreg.Template{{
		Name:              "by-name",
		SPIFFEIDTemplate:  `spiffe://example.org/{{ .PodMeta.Name }}/{{ index .PodMeta.Labels "v" }}`,
		NamespaceSelector: inNamespace(ns),
	}}}
	_, stop := run(t, cfg)
	stays := c.Pod(t, ns, "sa", node, map[string]string{"v": "1"})
	goes := c.Pod(t, ns, "sa", node, map[string]string{"v": "1"})
	changes := c.Pod(t, ns, "sa", node, map[string]string{"v": "1"})
	first := waitFor(t, store, "three entries", func(es []registry.Entry) bool { return len(es) == 3 })
	stop()

	// While no controller runs: a pod goes, one changes, one comes.
	c.DeletePod(t, goes)
	relabel(t, c, changes, map[string]string{"v": "2"})
	comes := c.Pod(t, ns, "sa", node, map[string]string{"v": "1"})

	store = openSQLite(t, path)
	cfg.Store = store
	ctl, _ := run(t, cfg)
	es := waitFor(t, store, "the entries of the pods there now", func(es []registry.Entry) bool {
		return len(es) == 3 && len(ofPod(es, goes)) == 0 && len(ofPod(es, comes)) == 1 &&
			len(ofPod(es, changes)) == 1 && ofPod(es, changes)[0].SPIFFEID.Path() == "/"+changes.Name+"/2"
	})
	assert.Equal(t, ofPod(first, stays), ofPod(es, stays), "an entry in step is not written again")
	want := k8sreg.Stats{Entries: 3, Creates: 2, Deletes: 2}
	st := statsWhen(t, ctl, func(st k8sreg.Stats) bool { st.Reconciles = 0; return st == want })
	st.Reconciles = 0
	assert.Equal(t, want, st, "one create for the new pod, one for the changed ID; two deletes")
}

func TestEntriesOfOthersAreLeftAlone(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t)) // after the client's connection to the API server is up
	c.ServiceAccount(t, ns, "sa")
	node := c.Node(t, nil, "")
	store := memstore.New(memstore.Config{})
	tmpl := []k8sreg.Template{{Name: "t", SPIFFEIDTemplate: "spiffe://example.org/{{ .PodMeta.Name }}", NamespaceSelector: inNamespace(ns)}}

	// Another owner's controller makes entries for the pods, then stops.
	pod := c.Pod(t, ns, "sa", node, nil)
	_, stop := run(t, k8sreg.Config{Client: c.Client, Store: store, Owner: "other", Templates: tmpl})
	others := waitFor(t, store, "the other owner's entry", func(es []registry.Entry) bool { return len(es) == 1 })
	stop()
	c.DeletePod(t, pod)

	// An entry made by hand that is similar to what the controller would
	// make for a pod.
	hand := c.Pod(t, ns, "sa", node, nil)
	byHand, err := store.Create(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/" + hand.Name), ParentID: agentID(node),
		Selectors: []attest.Selector{{Type: "k8s", Value: "ns:" + ns}, {Type: "k8s", Value: "pod-uid:" + string(hand.UID)}},
	})
	require.NoError(t, err)

	ctl, _ := run(t, k8sreg.Config{Client: c.Client, Store: store, Templates: tmpl})
	mine := c.Pod(t, ns, "sa", node, nil)
	es := waitFor(t, store, "the controller's entry", func(es []registry.Entry) bool { return len(ofPod(es, mine)) == 1 })
	assert.Len(t, es, 3, "the other owner's entry of a deleted pod, the entry by hand, the controller's")
	assert.Contains(t, es, others[0])
	assert.Contains(t, es, byHand)
	// The similar entry is reported, not written over nor duplicated.
	st := statsWhen(t, ctl, func(st k8sreg.Stats) bool { return st.Skipped == 1 && st.Entries == 1 })
	assert.Equal(t, uint64(1), st.Skipped)
	assert.Equal(t, 1, st.Entries)
}

// faulty is a store whose writes fail while fail is set, and that counts
// its listings, to show that a reconcile lists nothing.
type faulty struct {
	k8sreg.Store
	fail  atomic.Bool
	lists atomic.Int64
}

var errDown = errors.New("store is down")

func (f *faulty) List(ctx context.Context, flt registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	f.lists.Add(1)
	return f.Store.List(ctx, flt, p)
}

func (f *faulty) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if f.fail.Load() {
		return registry.Entry{}, errDown
	}
	return f.Store.Create(ctx, e)
}

func (f *faulty) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if f.fail.Load() {
		return registry.Entry{}, errDown
	}
	return f.Store.Update(ctx, e)
}

func (f *faulty) Delete(ctx context.Context, id string, rev int64) (registry.Entry, error) {
	if f.fail.Load() {
		return registry.Entry{}, errDown
	}
	return f.Store.Delete(ctx, id, rev)
}

func TestWritesBehindItsBackAndFailures(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t)) // after the client's connection to the API server is up
	c.ServiceAccount(t, ns, "sa")
	node := c.Node(t, nil, "")
	mem := memstore.New(memstore.Config{})
	store := &faulty{Store: mem}
	logs := &syncWriter{w: &strings.Builder{}}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ctl, _ := run(t, k8sreg.Config{Client: c.Client, Store: store, Logger: log, Workers: 1, Templates: []k8sreg.Template{{
		Name: "t", NamespaceSelector: inNamespace(ns),
		SPIFFEIDTemplate: "spiffe://example.org/{{ .PodMeta.Name }}",
		DNSNameTemplates: []string{`{{ index .PodMeta.Labels "dns" }}`},
	}}})

	// A failing store: the reconcile is retried until the store is back.
	store.fail.Store(true)
	pod := c.Pod(t, ns, "sa", node, map[string]string{"dns": "a"})
	require.Eventually(t, func() bool { return ctl.Stats().Failures >= 2 }, time.Minute, 10*time.Millisecond)
	store.fail.Store(false)
	es := waitFor(t, mem, "the entry", func(es []registry.Entry) bool { return len(es) == 1 })
	listsAfterStart := store.lists.Load()

	// Someone else changes the entry: the update conflicts, the entry is
	// read again and the update retried.
	e := es[0]
	e.Hint = "changed by hand"
	_, err := mem.Update(t.Context(), e)
	require.NoError(t, err)
	relabel(t, c, pod, map[string]string{"dns": "b"})
	waitFor(t, mem, "the entry of DNS name b", func(es []registry.Entry) bool {
		return len(es) == 1 && len(es[0].DNSNames) == 1 && es[0].DNSNames[0] == "b" && es[0].Hint == ""
	})

	// Someone else deletes the entry: the next update makes it again.
	_, err = mem.Delete(t.Context(), e.ID, 0)
	require.NoError(t, err)
	relabel(t, c, pod, map[string]string{"dns": "c"})
	es = waitFor(t, mem, "the entry made again", func(es []registry.Entry) bool {
		return len(es) == 1 && len(es[0].DNSNames) == 1 && es[0].DNSNames[0] == "c"
	})
	assert.Equal(t, e.ID, es[0].ID, "the same ID: it is the controller's")

	// A DNS name the registry refuses: the pod gets no entry, and that is
	// logged, not retried.
	relabel(t, c, pod, map[string]string{"dns": "not_a_host_name"})
	waitFor(t, mem, "the entry gone", func(es []registry.Entry) bool { return len(es) == 0 })
	// A DNS name template that renders empty leaves the name out.
	bare := c.Pod(t, ns, "sa", node, nil)
	es = waitFor(t, mem, "the entry of a pod without the label", func(es []registry.Entry) bool { return len(ofPod(es, bare)) == 1 })
	assert.Empty(t, es[0].DNSNames)
	assert.NotZero(t, ctl.Stats().Skipped, "the entry with the bad DNS name")

	assert.Equal(t, int64(1), listsAfterStart, "one page read at start")
	assert.Equal(t, listsAfterStart, store.lists.Load(), "reconciles never list the store")
	assert.Contains(t, logs.String(), "store is down")
}

func TestTemplatesThatFailGiveNoEntry(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	t.Cleanup(leaktest.Check(t))
	c.ServiceAccount(t, ns, "sa")
	node := c.Node(t, nil, "")
	store := memstore.New(memstore.Config{})
	tmpl := func(name, id string, sel ...string) k8sreg.Template {
		return k8sreg.Template{Name: name, SPIFFEIDTemplate: id, WorkloadSelectorTemplates: sel, NamespaceSelector: inNamespace(ns)}
	}
	ctl, _ := run(t, k8sreg.Config{Client: c.Client, Store: store, Templates: []k8sreg.Template{
		tmpl("missing key", "spiffe://example.org/{{ .PodMeta.Labels.missing }}"),
		tmpl("other trust domain", "spiffe://other.org/{{ .PodMeta.Name }}"),
		tmpl("not an ID", "{{ .PodMeta.Name }}"),
		tmpl("reserved", "spiffe://example.org/spiffekit/agent/{{ .PodMeta.Name }}"),
		tmpl("bad selector", "spiffe://example.org/a/{{ .PodMeta.Name }}", "no-colon"),
		tmpl("too long", `spiffe://example.org/{{ printf "%03000d" 1 }}`),
		tmpl("fine", "spiffe://example.org/fine/{{ .PodMeta.Name }}"),
		tmpl("same ID again", "spiffe://example.org/fine/{{ .PodMeta.Name }}"),
	}})
	pod := c.Pod(t, ns, "sa", node, nil)
	es := waitFor(t, store, "the one good entry", func(es []registry.Entry) bool { return len(es) == 1 })
	assert.Equal(t, "/fine/"+pod.Name, es[0].SPIFFEID.Path())
	st := statsWhen(t, ctl, func(st k8sreg.Stats) bool { return st.Skipped >= 6 && st.Entries == 1 })
	assert.GreaterOrEqual(t, st.Skipped, uint64(6))
	assert.Equal(t, 1, st.Entries)

	// A pod not scheduled yet gets nothing.
	unscheduled, err := c.Client.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "unscheduled-"},
		Spec:       corev1.PodSpec{ServiceAccountName: "sa", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	later := c.Pod(t, ns, "sa", node, nil)
	waitFor(t, store, "the entry of the scheduled pod", func(es []registry.Entry) bool { return len(ofPod(es, later)) == 1 })
	assert.Empty(t, ofPod(entries(t, store), unscheduled))
}

// syncWriter lets a logger write from the controller's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

type unreadable struct{ k8sreg.Store }

func (unreadable) List(context.Context, registry.Filter, registry.Page) ([]registry.Entry, string, error) {
	return nil, "", errDown
}

func TestRunErrors(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	ctl, err := k8sreg.New(k8sreg.Config{Client: &kubernetes.Clientset{}, Store: unreadable{memstore.New(memstore.Config{})}, TrustDomain: td, ClusterName: "prod"})
	require.NoError(t, err)
	err = ctl.Run(t.Context())
	require.ErrorIs(t, err, errDown, "a store that cannot be read at start ends Run")
	assert.ErrorIs(t, ctl.Run(t.Context()), k8sreg.ErrRunning, "a controller runs once")
}
