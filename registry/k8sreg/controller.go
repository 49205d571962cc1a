package k8sreg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Store is where the controller keeps its entries: a [registry.Store]
// (the server's own, when the controller runs inside it) or a client of
// the server's administration API.
type Store interface {
	registry.Reader
	registry.Writer
}

// Config configures a [Controller].
type Config struct {
	// Client reads Pods, Namespaces and Nodes of the cluster. Required.
	Client kubernetes.Interface
	// Store holds the entries. Required.
	Store Store
	// TrustDomain is the trust domain of the entries. Required.
	TrustDomain spiffeid.TrustDomain
	// ClusterName is the cluster's name as the k8s_psat node attestor of
	// the server knows it: entries are parented by the agent IDs it gives,
	// spiffe://<td>/spiffekit/agent/k8s_psat/<ClusterName>/<node UID>.
	// Required.
	ClusterName string
	// ClusterDomain is given to templates as .ClusterDomain; it may be
	// empty.
	ClusterDomain string
	// Templates say which pods get which entries. Each is checked as
	// [ParseTemplates] does.
	Templates []Template
	// Owner tells this controller's entries from all others in the
	// store: two controllers writing to one store need different owners.
	// Empty means ClusterName.
	Owner string
	// Workers is the number of pods reconciled at once; zero means 4.
	Workers int
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
}

// A Controller keeps registration entries in step with the pods of one
// Kubernetes cluster, as spire-controller-manager's ClusterSPIFFEID does:
// each scheduled pod gets one entry per [Template] that selects it, for
// the SPIFFE ID the template renders, with the selectors k8s:ns:<ns> and
// k8s:pod-uid:<uid> (and the template's own), parented by the agent of
// the pod's node. When the pod, its namespace or its node changes, the
// entries are brought up to date; when the pod goes, they are deleted.
//
// # What it owns
//
// The controller writes, changes and deletes only entries it made. Their
// entry ID is derived from the owner, the pod's UID and the SPIFFE ID
// (the first 128 bits of a SHA-256), so an entry is the controller's when
// its ID is the one derived from its own k8s:pod-uid selector and SPIFFE
// ID: entries written by hand or by another owner are never touched, and
// an entry created twice (a restart between the write and its
// acknowledgement) collides with itself instead of being duplicated.
//
// # Cost
//
// Run reads the store once when it starts, page by page, to find the
// controller's entries (and delete those of pods that went away while it
// was not running), and creates the entries it lacks in batches when the
// store is a [registry.BatchCreator]. From then on it works from the informers' events and
// its own index of its entries: a reconcile of one pod reads nothing from
// the store and writes only what differs. An entry changed or deleted
// behind its back is found when a write fails and is read again then.
//
// New starts nothing; Run does the work. A Controller runs once.
type Controller struct {
	client    kubernetes.Interface
	store     Store
	td        spiffeid.TrustDomain
	cluster   string
	domain    string
	owner     string
	workers   int
	templates []compiled
	log       *slog.Logger

	running atomic.Bool
	idx     index
	stats   struct{ reconciles, creates, updates, deletes, failures, skipped atomic.Uint64 }

	// Set by Run before any worker starts.
	pods  cache.Indexer
	nss   cache.Indexer
	nodes cache.Indexer
	queue workqueue.TypedRateLimitingInterface[string]
}

// New checks c and returns a controller. It starts nothing.
func New(c Config) (*Controller, error) {
	switch {
	case c.Client == nil:
		return nil, errors.New("k8sreg: Client is missing")
	case c.Store == nil:
		return nil, errors.New("k8sreg: Store is missing")
	case c.TrustDomain.IsZero():
		return nil, errors.New("k8sreg: TrustDomain is missing")
	case c.ClusterName == "":
		return nil, errors.New("k8sreg: ClusterName is missing")
	case c.Workers < 0:
		return nil, errors.New("k8sreg: Workers is negative")
	}
	if err := spiffeid.ValidatePathSegment(c.ClusterName); err != nil {
		return nil, fmt.Errorf("k8sreg: ClusterName %q cannot be part of an agent ID: %w", c.ClusterName, err)
	}
	ts, err := compile(c.Templates, c.TrustDomain)
	if err != nil {
		return nil, err
	}
	ctl := &Controller{
		client: c.Client, store: c.Store, td: c.TrustDomain, cluster: c.ClusterName, domain: c.ClusterDomain,
		owner: c.Owner, workers: c.Workers, templates: ts, log: c.Logger,
	}
	if ctl.owner == "" {
		ctl.owner = c.ClusterName
	}
	if ctl.workers == 0 {
		ctl.workers = 4
	}
	if ctl.log == nil {
		ctl.log = slog.New(slog.DiscardHandler)
	}
	ctl.idx.byPod = make(map[string]map[string]registry.Entry)
	return ctl, nil
}

// Stats are a controller's figures since it was made.
type Stats struct {
	// Entries is the number of entries the controller holds now.
	Entries int
	// Reconciles counts the pods reconciled, whether or not anything was
	// written.
	Reconciles uint64
	// Creates, Updates and Deletes count the controller's successful
	// writes.
	Creates, Updates, Deletes uint64
	// Skipped counts, each time the controller meets one, the entries a
	// template gave that could not be written: the template failed on the
	// pod, the entry is invalid, or an entry of another owner is similar
	// to it. Each is logged.
	Skipped uint64
	// Failures counts the reconciles that failed and were retried.
	Failures uint64
}

// Stats returns the controller's figures. It is safe to call at any time.
func (c *Controller) Stats() Stats {
	return Stats{
		Entries:    c.idx.len(),
		Reconciles: c.stats.reconciles.Load(),
		Creates:    c.stats.creates.Load(),
		Updates:    c.stats.updates.Load(),
		Deletes:    c.stats.deletes.Load(),
		Skipped:    c.stats.skipped.Load(),
		Failures:   c.stats.failures.Load(),
	}
}

// OwnedBy reports whether e is an entry that a controller with the given
// owner made.
func OwnedBy(e registry.Entry, owner string) bool {
	uid, ok := podUID(e)
	return ok && e.ID == entryID(owner, uid, e.SPIFFEID)
}

const podUIDPrefix = "pod-uid:"

// podUID returns the value of e's one k8s:pod-uid selector.
func podUID(e registry.Entry) (string, bool) {
	var uid string
	n := 0
	for _, s := range e.Selectors {
		if s.Type == "k8s" && strings.HasPrefix(s.Value, podUIDPrefix) {
			uid = strings.TrimPrefix(s.Value, podUIDPrefix)
			n++
		}
	}
	return uid, n == 1
}

// entryID derives the ID of the owner's entry for a pod and a SPIFFE ID.
func entryID(owner, uid string, id spiffeid.ID) string {
	h := sha256.New()
	for _, s := range []string{"spiffekit k8sreg entry", owner, uid, id.String()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ErrRunning is returned by Run when the controller runs already or ran.
var ErrRunning = errors.New("k8sreg: the controller runs, or ran, already")

// listPage is the page size of Run's first reading of the store.
const listPage = 1000

const (
	byUID  = "uid"
	byNode = "node"
)

// Run finds the controller's entries in the store, starts the informers,
// waits for their caches and reconciles pods until ctx is done; then it
// stops everything it started and returns nil. It returns an error if
// the store cannot be read at start or the caches do not fill. A failed
// write is retried with backoff and logged; it does not end Run.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if err := c.load(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithTransform(stripManagedFields))
	defer factory.Shutdown()
	podInf := factory.Core().V1().Pods().Informer()
	nsInf := factory.Core().V1().Namespaces().Informer()
	nodeInf := factory.Core().V1().Nodes().Informer()
	if err := podInf.AddIndexers(cache.Indexers{
		byUID:  func(obj any) ([]string, error) { return []string{string(obj.(*corev1.Pod).UID)}, nil },
		byNode: func(obj any) ([]string, error) { return []string{obj.(*corev1.Pod).Spec.NodeName}, nil },
	}); err != nil {
		return fmt.Errorf("k8sreg: %w", err)
	}
	c.pods, c.nss, c.nodes = podInf.GetIndexer(), nsInf.GetIndexer(), nodeInf.GetIndexer()
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "k8sreg"})
	defer c.queue.ShutDown()

	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueuePod(obj) },
		UpdateFunc: func(_, obj any) { c.enqueuePod(obj) },
		DeleteFunc: func(obj any) { c.enqueuePod(obj) },
	}); err != nil {
		return fmt.Errorf("k8sreg: %w", err)
	}
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueIndexed(cache.NamespaceIndex, obj) },
		UpdateFunc: func(old, obj any) {
			if !reflect.DeepEqual(meta(old), meta(obj)) {
				c.enqueueIndexed(cache.NamespaceIndex, obj)
			}
		},
		DeleteFunc: func(obj any) { c.enqueueIndexed(cache.NamespaceIndex, obj) },
	}); err != nil {
		return fmt.Errorf("k8sreg: %w", err)
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueIndexed(byNode, obj) },
		UpdateFunc: func(old, obj any) {
			// Nodes report their status often; only what templates and
			// parents read is worth a reconcile.
			o, n := old.(*corev1.Node), obj.(*corev1.Node)
			if !reflect.DeepEqual(meta(o), meta(n)) || !reflect.DeepEqual(o.Spec, n.Spec) {
				c.enqueueIndexed(byNode, obj)
			}
		},
		DeleteFunc: func(obj any) { c.enqueueIndexed(byNode, obj) },
	}); err != nil {
		return fmt.Errorf("k8sreg: %w", err)
	}

	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("k8sreg: the cache of %v did not fill", typ)
		}
	}
	if err := c.fill(ctx); err != nil {
		c.log.Warn("k8sreg: creating entries in batches failed; creating them one by one", "err", err)
	}
	// Pods that went away while the controller was not running have no
	// event: their entries are found through the index.
	for _, uid := range c.idx.pods() {
		c.queue.Add(uid)
	}
	c.log.Info("k8sreg: running", "cluster", c.cluster, "owner", c.owner, "entries", c.idx.len(), "pods", len(c.pods.ListKeys()))

	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() { c.work(ctx) })
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

// fill creates the entries the index lacks, for every pod in the cache,
// in batches of [registry.MaxBatch] when the store is a
// [registry.BatchCreator]: a first start, or one after a long stop, then
// costs one transaction per batch instead of one per entry. An entry the
// store refuses is left to the pod's reconcile, which reports it.
func (c *Controller) fill(ctx context.Context) error {
	bc, ok := c.store.(registry.BatchCreator)
	if !ok {
		return nil
	}
	var batch []registry.Entry
	var uids []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		results, err := bc.CreateBatch(ctx, batch)
		if err != nil {
			return err
		}
		for i, r := range results {
			if r.Err == nil {
				c.stats.creates.Add(1)
				c.idx.put(uids[i], r.Entry)
			}
		}
		batch, uids = batch[:0], uids[:0]
		return nil
	}
	for _, obj := range c.pods.List() {
		uid := string(obj.(*corev1.Pod).UID)
		have := c.idx.get(uid)
		for id, w := range c.desired(uid) {
			if _, ok := have[id]; ok {
				continue
			}
			batch, uids = append(batch, w), append(uids, uid)
			if len(batch) == registry.MaxBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// load reads the store once, page by page, into the index.
func (c *Controller) load(ctx context.Context) error {
	page := registry.Page{Size: listPage}
	for {
		es, next, err := c.store.List(ctx, registry.Filter{}, page)
		if err != nil {
			return fmt.Errorf("k8sreg: reading the controller's entries: %w", err)
		}
		for _, e := range es {
			if uid, ok := podUID(e); ok && e.ID == entryID(c.owner, uid, e.SPIFFEID) {
				c.idx.put(uid, e)
			}
		}
		if next == "" {
			return nil
		}
		page.Token = next
	}
}

func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.ObjectMetaAccessor); ok {
		m.GetObjectMeta().SetManagedFields(nil)
	}
	return obj, nil
}

// meta is what a namespace's or node's templates may read of its
// metadata: all of it but what changes on every write.
func meta(obj any) metav1.ObjectMeta {
	m, ok := obj.(metav1.ObjectMetaAccessor)
	if !ok {
		return metav1.ObjectMeta{}
	}
	om := *m.GetObjectMeta().(*metav1.ObjectMeta)
	om.ResourceVersion, om.ManagedFields, om.Generation = "", nil, 0
	return om
}

func unwrapTombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (c *Controller) enqueuePod(obj any) {
	if p, ok := unwrapTombstone(obj).(*corev1.Pod); ok {
		c.queue.Add(string(p.UID))
	}
}

// enqueueIndexed queues the pods of a namespace or a node.
func (c *Controller) enqueueIndexed(index string, obj any) {
	m, ok := unwrapTombstone(obj).(metav1.Object)
	if !ok {
		return
	}
	pods, err := c.pods.ByIndex(index, m.GetName())
	if err != nil {
		c.log.Error("k8sreg: listing pods", "index", index, "name", m.GetName(), "err", err)
		return
	}
	for _, p := range pods {
		c.queue.Add(string(p.(*corev1.Pod).UID))
	}
}

func (c *Controller) work(ctx context.Context) {
	for {
		uid, quit := c.queue.Get()
		if quit {
			return
		}
		if err := c.reconcile(ctx, uid); err != nil && ctx.Err() == nil {
			c.stats.failures.Add(1)
			c.log.Warn("k8sreg: reconciling a pod failed; retrying", "pod_uid", uid, "err", err)
			c.queue.AddRateLimited(uid)
		} else {
			c.queue.Forget(uid)
		}
		c.queue.Done(uid)
	}
}

// desired renders the entries the pod with the given UID should have,
// keyed by entry ID: none if the pod is gone, not scheduled, or its
// namespace or node is not known.
func (c *Controller) desired(uid string) map[string]registry.Entry {
	objs, _ := c.pods.ByIndex(byUID, uid)
	if len(objs) != 1 {
		return nil
	}
	pod := objs[0].(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return nil
	}
	nsObj, ok, _ := c.nss.GetByKey(pod.Namespace)
	if !ok {
		return nil
	}
	nodeObj, ok, _ := c.nodes.GetByKey(pod.Spec.NodeName)
	if !ok {
		return nil
	}
	ns, node := nsObj.(*corev1.Namespace), nodeObj.(*corev1.Node)
	parent, err := spiffeid.FromSegments(c.td, "spiffekit", "agent", "k8s_psat", c.cluster, string(node.UID))
	if err != nil {
		c.log.Warn("k8sreg: node UID cannot be part of an agent ID", "node", node.Name, "err", err)
		return nil
	}
	d := &data{
		TrustDomain: c.td.Name(), ClusterName: c.cluster, ClusterDomain: c.domain,
		PodMeta: &pod.ObjectMeta, PodSpec: &pod.Spec, NodeMeta: &node.ObjectMeta, NodeSpec: &node.Spec,
	}
	want := make(map[string]registry.Entry)
	for i := range c.templates {
		t := &c.templates[i]
		if t.nsSel != nil && !t.nsSel.Matches(labels.Set(ns.Labels)) || t.podSel != nil && !t.podSel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		e, err := t.entry(c.td, d, parent)
		if err != nil {
			c.stats.skipped.Add(1)
			c.log.Warn("k8sreg: template gives no entry for pod", "template", t.name, "pod", pod.Namespace+"/"+pod.Name, "err", err)
			continue
		}
		e.ID = entryID(c.owner, uid, e.SPIFFEID)
		if _, dup := want[e.ID]; dup {
			continue // two templates give the same SPIFFE ID: the first wins
		}
		slices.SortFunc(e.Selectors, attest.Selector.Compare)
		slices.SortFunc(e.FederatesWith, spiffeid.TrustDomain.Compare)
		want[e.ID] = e
	}
	return want
}

// reconcile brings the entries of one pod in step with what its templates
// give, from the index, writing only the differences.
func (c *Controller) reconcile(ctx context.Context, uid string) error {
	defer c.stats.reconciles.Add(1)
	want := c.desired(uid)
	have := c.idx.get(uid)
	var errs []error
	for id, w := range want {
		h, ok := have[id]
		switch {
		case !ok:
			errs = append(errs, c.create(ctx, uid, w))
		case !sameFields(h, w):
			errs = append(errs, c.update(ctx, uid, h, w))
		}
	}
	for id := range have {
		if _, ok := want[id]; !ok {
			errs = append(errs, c.remove(ctx, uid, id))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) create(ctx context.Context, uid string, w registry.Entry) error {
	e, err := c.store.Create(ctx, w)
	switch {
	case err == nil:
		c.stats.creates.Add(1)
		c.idx.put(uid, e)
		return nil
	case errors.Is(err, registry.ErrAlreadyExists):
		// Either the entry is there already (created before a restart and
		// not yet seen), or another owner's entry is similar to it.
		got, gerr := c.store.Get(ctx, w.ID)
		if errors.Is(gerr, registry.ErrNotFound) {
			c.stats.skipped.Add(1)
			c.log.Warn("k8sreg: an entry of another owner is similar; leaving it alone", "spiffe_id", w.SPIFFEID.String(), "parent_id", w.ParentID.String())
			return nil
		}
		if gerr != nil {
			return fmt.Errorf("k8sreg: reading entry %s: %w", w.ID, gerr)
		}
		c.idx.put(uid, got)
		if !sameFields(got, w) {
			return c.update(ctx, uid, got, w)
		}
		return nil
	case errors.Is(err, registry.ErrInvalid):
		c.stats.skipped.Add(1)
		c.log.Warn("k8sreg: the store refuses the entry", "spiffe_id", w.SPIFFEID.String(), "err", err)
		return nil
	}
	return fmt.Errorf("k8sreg: creating entry for %s: %w", w.SPIFFEID, err)
}

func (c *Controller) update(ctx context.Context, uid string, h, w registry.Entry) error {
	w.Revision = h.Revision
	e, err := c.store.Update(ctx, w)
	switch {
	case err == nil:
		c.stats.updates.Add(1)
		c.idx.put(uid, e)
		return nil
	case errors.Is(err, registry.ErrNotFound):
		// Deleted behind the controller's back: make it again.
		c.idx.drop(uid, w.ID)
		w.Revision = 0
		return c.create(ctx, uid, w)
	case errors.Is(err, registry.ErrConflict):
		// Changed behind the controller's back: read it, then retry.
		got, gerr := c.store.Get(ctx, w.ID)
		if gerr == nil {
			c.idx.put(uid, got)
		}
		return fmt.Errorf("k8sreg: updating entry %s: %w", w.ID, err)
	case errors.Is(err, registry.ErrInvalid), errors.Is(err, registry.ErrAlreadyExists):
		c.stats.skipped.Add(1)
		c.log.Warn("k8sreg: the store refuses the entry's update", "entry_id", w.ID, "spiffe_id", w.SPIFFEID.String(), "err", err)
		return nil
	}
	return fmt.Errorf("k8sreg: updating entry %s: %w", w.ID, err)
}

func (c *Controller) remove(ctx context.Context, uid, id string) error {
	_, err := c.store.Delete(ctx, id, 0)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return fmt.Errorf("k8sreg: deleting entry %s: %w", id, err)
	}
	if err == nil {
		c.stats.deletes.Add(1)
	}
	c.idx.drop(uid, id)
	return nil
}

// sameFields reports whether the stored entry h already has what w asks
// for (both with sorted sets).
func sameFields(h, w registry.Entry) bool {
	return h.SPIFFEID == w.SPIFFEID && h.ParentID == w.ParentID &&
		slices.Equal(h.Selectors, w.Selectors) && slices.Equal(h.DNSNames, w.DNSNames) &&
		slices.Equal(h.FederatesWith, w.FederatesWith) &&
		h.X509SVIDTTL == w.X509SVIDTTL && h.JWTSVIDTTL == w.JWTSVIDTTL && h.Hint == w.Hint
}

// index is the controller's own record of its entries, by pod UID.
type index struct {
	mu    sync.Mutex
	byPod map[string]map[string]registry.Entry
	n     int
}

func (x *index) put(uid string, e registry.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byPod[uid]
	if m == nil {
		m = make(map[string]registry.Entry, 1)
		x.byPod[uid] = m
	}
	if _, ok := m[e.ID]; !ok {
		x.n++
	}
	m[e.ID] = e
}

func (x *index) drop(uid, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.byPod[uid]
	if _, ok := m[id]; !ok {
		return
	}
	delete(m, id)
	x.n--
	if len(m) == 0 {
		delete(x.byPod, uid)
	}
}

// get returns a copy of the pod's entries.
func (x *index) get(uid string) map[string]registry.Entry {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := make(map[string]registry.Entry, len(x.byPod[uid]))
	for id, e := range x.byPod[uid] {
		m[id] = e
	}
	return m
}

func (x *index) pods() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	uids := make([]string, 0, len(x.byPod))
	for uid := range x.byPod {
		uids = append(uids, uid)
	}
	return uids
}

func (x *index) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n
}
