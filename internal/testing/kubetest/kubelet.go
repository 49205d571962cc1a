package kubetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubelet is a real kubelet of a [Cluster], running pods through a
// containerd of its own. Both keep their state under one temporary
// directory; what the kubelet writes elsewhere (cgroups named kubepods,
// /var/lib/kubelet/device-plugins, /var/log/containers) is removed when
// the test ends if it was not there before. There is no CNI: pods must use
// the host's network, and the node stays NotReady.
type Kubelet struct {
	// NodeName is the name of the kubelet's node.
	NodeName string
	// Port is the kubelet's secure (HTTPS) port on 127.0.0.1. It serves
	// the API server's serving certificate (127.0.0.1), of the CA in
	// CAFile, and authenticates and authorizes callers through the API
	// server (TokenReview, SubjectAccessReview).
	Port int
	// CAFile is a PEM file of the CA of the kubelet's serving certificate.
	CAFile string
	// Dir is the kubelet's and containerd's temporary directory.
	Dir string

	c                  *Cluster
	containerd, kubelt *process
	ctr, address       string
}

// SandboxImage is the image containerd runs pods' sandboxes from; the
// kubelet's start imports it from the pause program the test gives.
const SandboxImage = "spiffekit.test/pause:1"

// StartKubelet starts containerd and a kubelet registering a node of the
// cluster, and waits until the node is registered. pause is a static
// program that runs until SIGTERM: containerd's sandbox image. The test
// skips (fails when kube is required) if it does not run as root or
// containerd, runc, ctr or the kubelet binary is missing. Everything is
// stopped when t ends, after the pods on the node are deleted.
func (c *Cluster) StartKubelet(t testing.TB, pause string) *Kubelet {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if Required() {
			t.Fatalf("kubetest: kube is required ($%s) but a kubelet cannot run here: %s", EnvRequire, what)
		}
		t.Skipf("kubetest: %s", what)
	}
	if os.Geteuid() != 0 {
		missing("a kubelet needs root")
	}
	bins := map[string]string{}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr"} {
		p, err := exec.LookPath(b)
		if err != nil {
			missing("no " + b + " on PATH: install Debian's containerd and runc")
		}
		bins[b] = p
	}
	kubelet := filepath.Join(os.Getenv(EnvBin), "kubelet")
	if _, err := os.Stat(kubelet); err != nil {
		missing(fmt.Sprintf("no kubelet in %s=%s: %v", EnvBin, os.Getenv(EnvBin), err))
	}

	// Short: containerd's sockets live under it.
	dir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{NodeName: "kubelet-" + randomHex()[:8], Dir: dir, c: c, ctr: bins["ctr"],
		address: filepath.Join(dir, "containerd.sock"), CAFile: filepath.Join(dir, "ca.crt")}
	var outside []string // what the kubelet writes outside dir, if it is new
	for _, p := range []string{"/var/lib/kubelet", "/var/lib/kubelet/device-plugins/kubelet.sock", "/var/log/containers", "/var/log/pods"} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			outside = append(outside, p)
		}
	}
	cgroups := newCgroups("kubepods")
	t.Cleanup(func() {
		k.stop(t)
		for _, p := range outside {
			os.RemoveAll(p)
		}
		removeLinksInto("/var/log/containers", dir)
		cgroups.remove()
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	if err := os.WriteFile(k.CAFile, c.CA, 0o644); err != nil {
		t.Fatal(err)
	}

	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %[3]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = %[8]q
`, filepath.Join(dir, "containerd"), filepath.Join(dir, "run"), k.address, filepath.Join(dir, "opt"),
		SandboxImage, filepath.Join(dir, "cni", "bin"), filepath.Join(dir, "cni", "conf"), filepath.Join(dir, "runc"))
	configFile := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	k.containerd, err = startProcess("containerd", dir, bins["containerd"], "--config", configFile)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	if err := k.containerd.waitReady(func(ctx context.Context) error {
		return exec.CommandContext(ctx, k.ctr, "-a", k.address, "version").Run()
	}); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	k.ImportImage(t, SandboxImage, pause)

	addr := freePort()
	_, port, _ := net.SplitHostPort(addr)
	fmt.Sscan(port, &k.Port)
	kubeletConfig := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
makeIPTablesUtilChains: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
podLogsDir: %q
volumePluginDir: %q
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "0%%", "nodefs.available": "0%%", "imagefs.available": "0%%", "nodefs.inodesFree": "0%%"}
fileCheckFrequency: 1s
syncFrequency: 5s
`, k.Port, filepath.Join(c.dir, "serving.crt"), filepath.Join(c.dir, "serving.key"), k.address,
		filepath.Join(dir, "pod-logs"), filepath.Join(dir, "volume-plugins"))
	kubeletConfigFile := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kubeletConfigFile, []byte(kubeletConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	k.kubelt, err = startProcess("kubelet", dir, kubelet, "--config", kubeletConfigFile,
		"--kubeconfig", c.AdminKubeconfig, "--root-dir", filepath.Join(dir, "root"),
		"--cert-dir", filepath.Join(dir, "pki"), "--hostname-override", k.NodeName, "--node-ip", "127.0.0.1")
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA)
	probe := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer probe.CloseIdleConnections()
	if err := k.kubelt.waitReady(func(ctx context.Context) error {
		if _, err := c.Client.CoreV1().Nodes().Get(ctx, k.NodeName, metav1.GetOptions{}); err != nil {
			return err
		}
		return get(ctx, probe, fmt.Sprintf("https://127.0.0.1:%d/pods", k.Port), c.adminToken)
	}); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return k
}

// Log returns the end of the kubelet's log.
func (k *Kubelet) Log() string { return k.kubelt.tail() }

// stop deletes the pods of the node and waits (a minute at most) until the
// kubelet has stopped them, then stops the kubelet, removes whatever
// containers are left, and stops containerd.
func (k *Kubelet) stop(t testing.TB) {
	if k.kubelt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		pods := k.c.Client.CoreV1().Pods("")
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + k.NodeName})
		if err == nil {
			var zero int64
			for _, p := range list.Items {
				k.c.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}
			for ctx.Err() == nil {
				out, _ := exec.CommandContext(ctx, k.ctr, "-a", k.address, "-n", "k8s.io", "tasks", "ls", "-q").Output()
				if len(bytes.TrimSpace(out)) == 0 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		cancel()
		k.kubelt.stop()
	}
	if k.containerd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ctr := func(args ...string) []string {
			out, _ := exec.CommandContext(ctx, k.ctr, append([]string{"-a", k.address, "-n", "k8s.io"}, args...)...).Output()
			return strings.Fields(string(out))
		}
		for _, id := range ctr("tasks", "ls", "-q") {
			ctr("tasks", "kill", "-a", "-s", "SIGKILL", id)
			ctr("tasks", "delete", "-f", id)
		}
		for _, id := range ctr("containers", "ls", "-q") {
			ctr("containers", "delete", id)
		}
		k.containerd.stop()
	}
}

// ImportImage imports into containerd's k8s.io namespace an image named
// name (with its tag) whose one file is the static program bin, at /app,
// its entry point. Pods use it with imagePullPolicy Never.
func (k *Kubelet) ImportImage(t testing.TB, name, bin string) {
	t.Helper()
	archive, err := imageArchive(name, bin)
	if err != nil {
		t.Fatalf("kubetest: making image %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.ctr, "-a", k.address, "-n", "k8s.io", "images", "import", "-")
	cmd.Stdin = bytes.NewReader(archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubetest: importing image %s: %v\n%s", name, err, out)
	}
}

// imageArchive returns a docker-archive tarball (what "docker save"
// writes) of one image, tagged name, of one layer holding bin at /app.
func imageArchive(name, bin string) ([]byte, error) {
	prog, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.WriteHeader(&tar.Header{Name: "app", Mode: 0o755, Size: int64(len(prog)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	lw.Write(prog)
	if err := lw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(layer.Bytes())
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Entrypoint": []string{"/app"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return nil, err
	}
	cs := sha256.Sum256(config)
	configName := hex.EncodeToString(cs[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{name}, "Layers": []string{"layer.tar"},
	}})
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", layer.Bytes()}, {configName, config}, {"manifest.json", manifest}} {
		if err := w.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		w.Write(f.data)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// HostPod returns a pod for the kubelet's node: one container, name, of
// image (imported with [Kubelet.ImportImage]) with args, on the host's
// network, never pulled, without a service account token, with the host
// directories mounts (host path to container path) mounted.
func (k *Kubelet) HostPod(ns, name, sa, image string, labels map[string]string, mounts map[string]string, args ...string) *corev1.Pod {
	no := false
	var zero int64
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      k.NodeName,
			ServiceAccountName:            sa,
			HostNetwork:                   true,
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: &zero,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "main", Image: image, Args: args, ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
	hostPathType := corev1.HostPathDirectory
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for i, p := range paths {
		v := fmt.Sprintf("host-%d", i)
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: p, Type: &hostPathType}}})
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: v, MountPath: mounts[p]})
	}
	return pod
}

// cgroups are the cgroup directories of a name directly under each
// hierarchy's root, and the directories under them that exist before the
// test: remove removes the others.
type cgroups struct {
	roots  []string
	before map[string]bool
}

func newCgroups(name string) *cgroups {
	cg := &cgroups{before: map[string]bool{}}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cg
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		// ... mount point (4), ..., "-", fs type, source, options.
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		if fs := fields[sep+1]; (fs == "cgroup" || fs == "cgroup2") && !seen[fields[4]] {
			seen[fields[4]] = true
			cg.roots = append(cg.roots, filepath.Join(fields[4], name))
		}
	}
	for _, d := range cg.dirs() {
		cg.before[d] = true
	}
	return cg
}

// dirs lists the directories under the roots, the roots included,
// parents first.
func (cg *cgroups) dirs() []string {
	var dirs []string
	for _, root := range cg.roots {
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	return dirs
}

// remove removes the cgroups made since newCgroups, children first. A
// cgroup is a directory whose files cannot be removed; rmdir removes it
// once it has no processes and no children.
func (cg *cgroups) remove() {
	for _, d := range slices.Backward(cg.dirs()) {
		if !cg.before[d] {
			syscall.Rmdir(d)
		}
	}
}

// unmountUnder unmounts (lazily) whatever is mounted under dir, deepest
// first: containers' root filesystems and pods' volumes left behind.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	slices.Sort(points)
	for _, p := range slices.Backward(points) {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// removeLinksInto removes the symbolic links in dir that point under
// target: the kubelet's links to its containers' logs.
func removeLinksInto(dir, target string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if to, err := os.Readlink(p); err == nil && strings.HasPrefix(to, target+"/") {
			os.Remove(p)
		}
	}
}
