package k8s_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8s"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// recording is a pod list the kubelet served (testdata/README.md says how
// each was recorded), with what the tests need to know of it.
type recording struct {
	raw  []byte
	pods []recordedPod
}

type recordedPod struct {
	UID, Name, Namespace, SA, Node string
	Containers                     []recordedContainer
}

type recordedContainer struct {
	Name, Image, ImageID, ID string
}

// load reads a recorded pod list.
func load(t testing.TB, name string) recording {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var list struct {
		Items []struct {
			Metadata struct{ Name, Namespace, UID string } `json:"metadata"`
			Spec     struct {
				ServiceAccountName string `json:"serviceAccountName"`
				NodeName           string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				ContainerStatuses []struct{ Name, Image, ImageID, ContainerID string } `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(raw, &list))
	r := recording{raw: raw}
	for _, it := range list.Items {
		p := recordedPod{UID: it.Metadata.UID, Name: it.Metadata.Name, Namespace: it.Metadata.Namespace,
			SA: it.Spec.ServiceAccountName, Node: it.Spec.NodeName}
		for _, c := range it.Status.ContainerStatuses {
			_, id, _ := strings.Cut(c.ContainerID, "://")
			p.Containers = append(p.Containers, recordedContainer{c.Name, c.Image, c.ImageID, id})
		}
		r.pods = append(r.pods, p)
	}
	require.NotEmpty(t, r.pods, name)
	return r
}

// without returns the recording's pod list without the container of id,
// as the kubelet lists a pod whose container has not started yet.
func (r recording) without(t testing.TB, id string) []byte {
	t.Helper()
	var list map[string]any
	require.NoError(t, json.Unmarshal(r.raw, &list))
	for _, it := range list["items"].([]any) {
		st := it.(map[string]any)["status"].(map[string]any)
		cs, _ := st["containerStatuses"].([]any)
		var keep []any
		for _, c := range cs {
			if !strings.HasSuffix(c.(map[string]any)["containerID"].(string), id) {
				keep = append(keep, c)
			}
		}
		st["containerStatuses"] = keep
	}
	out, err := json.Marshal(list)
	require.NoError(t, err)
	return out
}

// kubelet serves pod lists over HTTPS, as the kubelet's secure port does,
// from answer, and counts the requests.
type kubelet struct {
	srv      *httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	answer   func(n int32) (int, []byte) // status and body of the n-th request, from 1
	tokens   []string
}

func newKubelet(t testing.TB, answer func(n int32) (int, []byte)) *kubelet {
	t.Helper()
	k := &kubelet{answer: answer}
	k.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/pods" {
			http.Error(w, "unexpected", http.StatusNotFound)
			return
		}
		n := k.requests.Add(1)
		k.mu.Lock()
		k.tokens = append(k.tokens, r.Header.Get("Authorization"))
		answer := k.answer
		k.mu.Unlock()
		status, body := answer(n)
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func (k *kubelet) set(answer func(n int32) (int, []byte)) {
	k.mu.Lock()
	k.answer = answer
	k.mu.Unlock()
}

func serve(body []byte) func(int32) (int, []byte) {
	return func(int32) (int, []byte) { return http.StatusOK, body }
}

// config returns an attestor configuration for k, with processes in a fake
// proc filesystem at root.
func (k *kubelet) config(root string) k8s.Config {
	pool := x509.NewCertPool()
	pool.AddCert(k.srv.Certificate())
	return k8s.Config{
		KubeletURL: k.srv.URL,
		RootCAs:    pool,
		Token:      func(context.Context) (string, error) { return "agent-token", nil },
		ProcRoot:   root,
	}
}

// proc writes a process with the cgroup file cgroup into a fake proc
// filesystem at root, and returns it as a Workload.
func proc(t testing.TB, root string, pid int, cgroup string) attest.Workload {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"),
		[]byte(strconv.Itoa(pid)+" (workload) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644))
	return attest.Workload{PID: pid, StartTime: 5555}
}

// inPod is the cgroup file of a process in container id of pod uid, as
// the kubelet's systemd driver with containerd places it on cgroup v2.
func inPod(uid, id string) string {
	return "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") +
		".slice/cri-containerd-" + id + ".scope\n"
}

func newAttestor(t testing.TB, cfg k8s.Config) *k8s.Attestor {
	t.Helper()
	a, err := k8s.New(cfg)
	require.NoError(t, err)
	return a
}

func values(s attest.Selectors) []string {
	var out []string
	for sel := range s.All() {
		out = append(out, sel.Value)
	}
	return out
}

func TestAttestRecorded(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	rec := load(t, "handwritten.json")
	k := newKubelet(t, serve(rec.raw))
	root := t.TempDir()
	a := newAttestor(t, k.config(root))
	pod := rec.pods[0]
	c := pod.Containers[0]

	got, err := a.Attest(t.Context(), proc(t, root, 10, inPod(pod.UID, c.ID)))
	require.NoError(t, err)
	v := values(got)
	for _, want := range []string{"ns:" + pod.Namespace, "sa:" + pod.SA, "pod-name:" + pod.Name, "pod-uid:" + pod.UID,
		"node-name:" + pod.Node, "container-name:" + c.Name, "container-image:" + c.Image,
		"pod-image-count:" + strconv.Itoa(len(pod.Containers)), "pod-init-image-count:0"} {
		assert.Contains(t, v, want)
	}
	if c.ImageID != "" {
		assert.Contains(t, v, "container-image:"+c.ImageID)
	}
	for _, s := range v {
		assert.False(t, strings.HasSuffix(s, ":") && !strings.HasPrefix(s, "pod-label:"), "no empty property: %s", s)
	}
	assert.Equal(t, []string{"Bearer agent-token"}, k.tokens)

	// Every other container of the recording is its own pod's.
	for i, p := range rec.pods {
		for j, other := range p.Containers {
			got, err := a.Attest(t.Context(), proc(t, root, 100+10*i+j, inPod(p.UID, other.ID)))
			require.NoError(t, err)
			assert.Contains(t, values(got), "pod-uid:"+p.UID)
			assert.Contains(t, values(got), "container-name:"+other.Name)
		}
	}

	// A process in no container: no selectors, and the kubelet is not asked.
	before := k.requests.Load()
	got, err = a.Attest(t.Context(), proc(t, root, 11, "0::/user.slice/user-1000.slice/session-1.scope\n"))
	require.NoError(t, err)
	assert.Zero(t, got.Len())
	assert.Equal(t, before, k.requests.Load())
}

// TestAttestNeverAnotherPod tries to have a process taken for another
// pod's: each row must give no identity.
func TestAttestNeverAnotherPod(t *testing.T) {
	rec := load(t, "handwritten.json")
	require.GreaterOrEqual(t, len(rec.pods), 2, "the recording holds two pods")
	web, db := rec.pods[0], rec.pods[1]
	root := t.TempDir()
	for _, tt := range []struct {
		name   string
		cgroup string
		body   []byte
	}{
		{
			name:   "the container is listed in another pod than its cgroups name",
			cgroup: inPod(db.UID, web.Containers[0].ID),
			body:   rec.raw,
		},
		{
			name:   "two pods list the container",
			cgroup: inPod(web.UID, web.Containers[0].ID),
			body:   []byte(strings.ReplaceAll(string(rec.raw), db.Containers[0].ID, web.Containers[0].ID)),
		},
		{
			name:   "the cgroups name two containers",
			cgroup: "4:memory:/kubepods/pod" + web.UID + "/" + web.Containers[0].ID + "\n3:cpu:/kubepods/pod" + db.UID + "/" + db.Containers[0].ID + "\n",
			body:   rec.raw,
		},
		{
			name:   "a pod nested in a container's cgroup",
			cgroup: "0::/kubepods/pod" + web.UID + "/" + web.Containers[0].ID + "/kubepods/pod" + db.UID + "/" + db.Containers[0].ID + "\n",
			body:   rec.raw,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKubelet(t, serve(tt.body))
			a := newAttestor(t, k.config(root))
			got, err := a.Attest(t.Context(), proc(t, root, 20, tt.cgroup))
			require.ErrorIs(t, err, attest.ErrRejected)
			assert.Zero(t, got.Len())
		})
	}
}

// TestAttestContainerNotListedYet: a container that has just started is
// looked for again until the kubelet lists it, for a bounded time.
func TestAttestContainerNotListedYet(t *testing.T) {
	rec := load(t, "handwritten.json")
	pod := rec.pods[0]
	c := pod.Containers[0]
	early := rec.without(t, c.ID)
	root := t.TempDir()
	w := proc(t, root, 30, inPod(pod.UID, c.ID))

	// The servers run outside the bubbles: a goroutine waiting on the
	// network would keep fake time from advancing.
	k := newKubelet(t, nil)
	synctest.Test(t, func(t *testing.T) {
		k.requests.Store(0)
		k.set(func(n int32) (int, []byte) {
			if n <= 3 {
				return http.StatusOK, early
			}
			return http.StatusOK, rec.raw
		})
		a := newAttestor(t, k.config(root))
		start := time.Now()
		got, err := a.Attest(t.Context(), w)
		require.NoError(t, err)
		assert.Contains(t, values(got), "pod-uid:"+pod.UID)
		assert.Equal(t, int32(4), k.requests.Load())
		assert.Equal(t, 3*k8s.DefaultPollInterval, time.Since(start), "asked again every PollInterval")
	})

	synctest.Test(t, func(t *testing.T) {
		k.requests.Store(0)
		k.set(serve(early))
		cfg := k.config(root)
		cfg.PollInterval, cfg.PollTimeout = time.Second, 10*time.Second
		a := newAttestor(t, cfg)
		start := time.Now()
		_, err := a.Attest(t.Context(), w)
		require.ErrorContains(t, err, "does not list container "+c.ID)
		require.NotErrorIs(t, err, attest.ErrRejected, "the caller is told to retry")
		assert.Equal(t, 10*time.Second, time.Since(start))
		assert.Equal(t, int32(11), k.requests.Load())
	})

	synctest.Test(t, func(t *testing.T) {
		k.set(serve(early))
		a := newAttestor(t, k.config(root))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := a.Attest(ctx, w)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

// TestAttestWithoutPodUID: a container whose cgroups name no pod (seen
// from another cgroup namespace) is found by its ID alone, in a list made
// after the attestation began; without one it is no pod's.
func TestAttestWithoutPodUID(t *testing.T) {
	rec := load(t, "handwritten.json")
	pod := rec.pods[0]
	c := pod.Containers[0]
	root := t.TempDir()
	k := newKubelet(t, serve(rec.raw))
	a := newAttestor(t, k.config(root))

	got, err := a.Attest(t.Context(), proc(t, root, 40, "0::/../"+c.ID+"\n"))
	require.NoError(t, err)
	assert.Contains(t, values(got), "pod-uid:"+pod.UID)

	// Another runtime's container on the node: one fresh list, no wait.
	k.requests.Store(0)
	got, err = a.Attest(t.Context(), proc(t, root, 41, "0::/docker/"+strings.Repeat("ab", 32)+"\n"))
	require.NoError(t, err)
	assert.Zero(t, got.Len())
	assert.Equal(t, int32(1), k.requests.Load(), "the cached list is older than the attestation: asked once more")
}

// TestAttestCache: attestations share lists for MaxStaleness, and
// concurrent ones share one request.
func TestAttestCache(t *testing.T) {
	rec := load(t, "handwritten.json")
	pod := rec.pods[0]
	c := pod.Containers[0]
	root := t.TempDir()
	w := proc(t, root, 50, inPod(pod.UID, c.ID))

	t.Run("concurrent attestations", func(t *testing.T) {
		release := make(chan struct{})
		k := newKubelet(t, func(int32) (int, []byte) { <-release; return http.StatusOK, rec.raw })
		cfg := k.config(root)
		cfg.MaxStaleness = time.Hour // those that come after the answer read it
		a := newAttestor(t, cfg)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				_, err := a.Attest(t.Context(), w)
				assert.NoError(t, err)
			})
		}
		require.Eventually(t, func() bool { return k.requests.Load() > 0 }, time.Minute, time.Millisecond)
		close(release)
		wg.Wait()
		assert.Equal(t, int32(1), k.requests.Load(), "one request for all")
	})

	t.Run("staleness", func(t *testing.T) {
		// The server runs outside the bubble: a goroutine waiting on the
		// network would keep fake time from advancing.
		k := newKubelet(t, serve(rec.raw))
		synctest.Test(t, func(t *testing.T) {
			a := newAttestor(t, k.config(root))
			_, err := a.Attest(t.Context(), w)
			require.NoError(t, err)
			time.Sleep(k8s.DefaultMaxStaleness)
			_, err = a.Attest(t.Context(), w)
			require.NoError(t, err)
			assert.Equal(t, int32(1), k.requests.Load(), "the list answers within MaxStaleness")
			time.Sleep(time.Nanosecond)
			_, err = a.Attest(t.Context(), w)
			require.NoError(t, err)
			assert.Equal(t, int32(2), k.requests.Load(), "an older list is asked for again")
		})
	})

	t.Run("no cache", func(t *testing.T) {
		k := newKubelet(t, serve(rec.raw))
		cfg := k.config(root)
		cfg.MaxStaleness = -1
		a := newAttestor(t, cfg)
		for range 3 {
			_, err := a.Attest(t.Context(), w)
			require.NoError(t, err)
		}
		assert.Equal(t, int32(3), k.requests.Load())
	})
}

func TestAttestKubeletFailures(t *testing.T) {
	rec := load(t, "handwritten.json")
	pod := rec.pods[0]
	root := t.TempDir()
	w := proc(t, root, 60, inPod(pod.UID, pod.Containers[0].ID))
	for _, tt := range []struct {
		name   string
		status int
		body   []byte
		want   string
	}{
		{"unauthorized", http.StatusUnauthorized, []byte("Unauthorized"), "nodes/proxy"},
		{"forbidden", http.StatusForbidden, []byte(`Forbidden (user=system:serviceaccount:spire:agent, verb=get, resource=nodes, subresource(s)=[proxy])`), "subresource(s)=[proxy]"},
		{"a failure", http.StatusInternalServerError, nil, "500 Internal Server Error: no message"},
		{"a long failure", http.StatusServiceUnavailable, []byte(strings.Repeat("x ", 400)), "..."},
		{"not JSON", http.StatusOK, []byte("<html>"), "decoding the kubelet's pod list"},
		{"too large", http.StatusOK, []byte(`{"items": [` + strings.Repeat(" ", k8s.MaxPodListSize) + `]}`), "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := newKubelet(t, func(int32) (int, []byte) { return tt.status, tt.body })
			cfg := k.config(root)
			// Reading a pod list of MaxPodListSize over TLS under the race
			// detector on a loaded machine can outlast DefaultTimeout: the
			// case is about the size check, not the deadline.
			cfg.Timeout = 5 * time.Minute
			_, err := newAttestor(t, cfg).Attest(t.Context(), w)
			require.ErrorContains(t, err, tt.want)
			require.NotErrorIs(t, err, attest.ErrRejected)
			assert.NotContains(t, err.Error(), "agent-token")
		})
	}
}

func TestAttestTLS(t *testing.T) {
	rec := load(t, "handwritten.json")
	pod := rec.pods[0]
	root := t.TempDir()
	w := proc(t, root, 70, inPod(pod.UID, pod.Containers[0].ID))
	k := newKubelet(t, serve(rec.raw))

	t.Run("the chain without the name, as for 127.0.0.1 and a certificate naming the node", func(t *testing.T) {
		cfg := k.config(root)
		cfg.KubeletURL = strings.Replace(k.srv.URL, "127.0.0.1", "localhost", 1) // not in the certificate
		_, err := newAttestor(t, cfg).Attest(t.Context(), w)
		require.NoError(t, err)
	})
	t.Run("the name when given", func(t *testing.T) {
		cfg := k.config(root)
		cfg.ServerName = "example.com" // httptest's certificate holds it
		_, err := newAttestor(t, cfg).Attest(t.Context(), w)
		require.NoError(t, err)
		cfg.ServerName = "node-2"
		_, err = newAttestor(t, cfg).Attest(t.Context(), w)
		require.ErrorContains(t, err, "node-2")
	})
	t.Run("another CA", func(t *testing.T) {
		cfg := k.config(root)
		cfg.RootCAs = x509.NewCertPool()
		_, err := newAttestor(t, cfg).Attest(t.Context(), w)
		require.ErrorContains(t, err, "certificate signed by unknown authority")
	})
	t.Run("no verification", func(t *testing.T) {
		cfg := k.config(root)
		cfg.RootCAs, cfg.InsecureSkipVerify = nil, true
		_, err := newAttestor(t, cfg).Attest(t.Context(), w)
		require.NoError(t, err)
	})
	t.Run("the token cannot be read", func(t *testing.T) {
		cfg := k.config(root)
		cfg.Token = func(context.Context) (string, error) { return "", os.ErrNotExist }
		_, err := newAttestor(t, cfg).Attest(t.Context(), w)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("the read-only port", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			assert.Empty(t, r.Header.Get("Authorization"))
			w.Write(rec.raw)
		}))
		defer plain.Close()
		_, err := newAttestor(t, k8s.Config{KubeletURL: plain.URL, ProcRoot: root}).Attest(t.Context(), w)
		require.NoError(t, err)
	})
}

func TestNew(t *testing.T) {
	pool := x509.NewCertPool()
	token := func(context.Context) (string, error) { return "t", nil }
	for _, tt := range []struct {
		name string
		cfg  k8s.Config
		want string
	}{
		{"no URL", k8s.Config{}, "KubeletURL is required"},
		{"another scheme", k8s.Config{KubeletURL: "tcp://127.0.0.1:10250"}, "want an https:// or http:// URL"},
		{"a path", k8s.Config{KubeletURL: "https://127.0.0.1:10250/pods", RootCAs: pool}, "scheme, host and port only"},
		{"no host", k8s.Config{KubeletURL: "https://", RootCAs: pool}, "scheme, host and port only"},
		{"a user", k8s.Config{KubeletURL: "https://u@127.0.0.1:10250", RootCAs: pool}, "scheme, host and port only"},
		{"not a URL", k8s.Config{KubeletURL: "https://[::1"}, "KubeletURL"},
		{"a token in the clear", k8s.Config{KubeletURL: "http://127.0.0.1:10255", Token: token}, "https:// KubeletURL only"},
		{"https without CAs", k8s.Config{KubeletURL: "https://127.0.0.1:10250"}, "needs RootCAs"},
		{"a negative interval", k8s.Config{KubeletURL: "http://127.0.0.1:10255", PollInterval: -1}, "PollInterval must not be negative"},
		{"a negative timeout", k8s.Config{KubeletURL: "http://127.0.0.1:10255", Timeout: -1}, "Timeout must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k8s.New(tt.cfg)
			require.ErrorContains(t, err, tt.want)
		})
	}
	a := newAttestor(t, k8s.Config{KubeletURL: "https://127.0.0.1:10250/", RootCAs: pool})
	_, err := a.Attest(t.Context(), attest.Workload{PID: -1})
	require.ErrorContains(t, err, "is not a process")
	_, err = a.Attest(t.Context(), attest.Workload{PID: 999999999})
	require.ErrorIs(t, err, attest.ErrRejected, "no such process")
}

// TestAttestRecordedKubelet replays what a real kubelet answered, and the
// cgroups of the processes of its containers (testdata/README.md): each
// process is attested as its pod's container.
func TestAttestRecordedKubelet(t *testing.T) {
	rec := load(t, "kubelet-pods.json")
	data, err := os.ReadFile(filepath.Join("testdata", "kubelet-cgroups.json"))
	require.NoError(t, err)
	var cgroups map[string]string
	require.NoError(t, json.Unmarshal(data, &cgroups))
	require.NotEmpty(t, cgroups)

	k := newKubelet(t, serve(rec.raw))
	root := t.TempDir()
	a := newAttestor(t, k.config(root))
	pid, attested := 200, 0
	for _, pod := range rec.pods {
		for _, c := range pod.Containers {
			cgroup, ok := cgroups[c.ID]
			if !ok {
				continue // an init container that has exited
			}
			pid++
			got, err := a.Attest(t.Context(), proc(t, root, pid, cgroup))
			require.NoError(t, err)
			v := values(got)
			assert.Contains(t, v, "pod-uid:"+pod.UID)
			assert.Contains(t, v, "pod-name:"+pod.Name)
			assert.Contains(t, v, "ns:"+pod.Namespace)
			assert.Contains(t, v, "container-name:"+c.Name)
			assert.Contains(t, v, "container-image:"+c.Image)
			attested++
		}
	}
	assert.Equal(t, len(cgroups), attested, "every recorded process")
	assert.Equal(t, int32(1), k.requests.Load(), "one list for all, within MaxStaleness")
}
