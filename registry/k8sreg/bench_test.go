package k8sreg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/registry/k8sreg"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
)

// benchPods is the number of pods of BenchmarkReconcile: 1,000, or 30,000
// with SPIFFEKIT_LONG=1.
func benchPods() int {
	if os.Getenv("SPIFFEKIT_LONG") == "1" {
		return 30000
	}
	return 1000
}

// BenchmarkReconcile measures a controller bringing the entries of N pods,
// real objects in a real API server (300 pods per node), in step: "fresh"
// from an empty store (N creates), "restart" from a store that holds them
// all already (its index read from the store, every pod reconciled, no
// write). heap-MB is the live heap the controller holds once in step: its
// informers' caches, its index, and the in-memory store's entries.
func BenchmarkReconcile(b *testing.B) {
	n := benchPods()
	c := kubetest.Shared(b)
	ns := c.Namespace(b)
	c.ServiceAccount(b, ns, "sa")
	createPods(b, c, ns, n)
	store := memstore.New(memstore.Config{})
	cfg := k8sreg.Config{Client: c.Client, Store: store, TrustDomain: td, ClusterName: "prod", Templates: []k8sreg.Template{{
		Name:              "by-sa",
		SPIFFEIDTemplate:  "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}/{{ .PodMeta.Name }}",
		NamespaceSelector: inNamespace(ns),
		DNSNameTemplates:  []string{"{{ .PodMeta.Name }}.{{ .PodMeta.Namespace }}.svc"},
	}}}
	b.Run(fmt.Sprintf("fresh/pods=%d", n), func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			cfg.Store = memstore.New(memstore.Config{})
			b.StartTimer()
			inStep(b, cfg, n, func(s k8sreg.Stats) bool { return s.Entries == n })
		}
	})
	// The same into SQLite, one transaction per entry.
	b.Run(fmt.Sprintf("fresh-sqlite/pods=%d", n), func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			db, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(b.TempDir(), "registry.db")})
			if err != nil {
				b.Fatal(err)
			}
			sql := cfg
			sql.Store = db
			b.StartTimer()
			inStep(b, sql, n, func(s k8sreg.Stats) bool { return s.Entries == n })
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
	})
	// The restart runs against one store filled once.
	cfg.Store = store
	inStep(b, cfg, n, func(s k8sreg.Stats) bool { return s.Entries == n })
	b.Run(fmt.Sprintf("restart/pods=%d", n), func(b *testing.B) {
		for b.Loop() {
			st := inStep(b, cfg, n, func(s k8sreg.Stats) bool { return s.Reconciles >= uint64(n) })
			if st.Creates+st.Updates+st.Deletes != 0 {
				b.Fatalf("a restart in step wrote entries: %+v", st)
			}
		}
	})
}

// inStep runs a controller until cond holds of its figures, reports its
// pods per second and live heap, and stops it.
func inStep(b *testing.B, cfg k8sreg.Config, n int, cond func(k8sreg.Stats) bool) k8sreg.Stats {
	b.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	ctl, err := k8sreg.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Minute)
	for !cond(ctl.Stats()) {
		if time.Now().After(deadline) {
			b.Fatalf("not in step after 30 minutes: %+v", ctl.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := ctl.Stats()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "pods/s")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MB")
	b.StartTimer()
	return st
}

// createPods creates n scheduled pods in ns, 300 per node, 16 at a time,
// through a client without client-go's default rate limit (5 requests a
// second).
func createPods(b *testing.B, c *kubetest.Cluster, ns string, n int) {
	b.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	rc.QPS, rc.Burst = 5000, 5000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]*corev1.Node, (n+299)/300)
	for i := range nodes {
		nodes[i] = c.Node(b, nil, "")
	}
	work := make(chan int)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range work {
				_, err := client.CoreV1().Pods(ns).Create(b.Context(), &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": "bench"}},
					Spec: corev1.PodSpec{ServiceAccountName: "sa", NodeName: nodes[i%len(nodes)].Name,
						Containers: []corev1.Container{{Name: "app", Image: "spiffekit/bench:test"}}},
				}, metav1.CreateOptions{})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	for i := range n {
		select {
		case work <- i:
		case err := <-errs:
			close(work)
			wg.Wait()
			b.Fatalf("creating pods: %v", err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("creating pods: %v", err)
	default:
	}
}
