package spiffekit_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/spiffekit/spiffekit"

// prometheus is the import path prefix of the Prometheus libraries, which
// only the programs may use: library packages expose Stats or an
// observer interface instead.
const (
	prometheus = "github.com/prometheus/"
	promRule   = "only examples/ may depend on Prometheus; a library package exposes Stats() or an observer"
)

// kubernetes is the import path prefix of the Kubernetes libraries
// (client-go, the API types, apimachinery). They are large, and register
// every API group at start-up: only the packages that talk to a Kubernetes
// API server may depend on them, so that the rest of the library, and the
// programs that do not use them, link none of it.
const (
	kubernetes = "k8s.io/"
	kubeRule   = "only the packages in kubePackages (those that talk to a Kubernetes API server), test-only packages and programs may depend on k8s.io/"
)

// kubePackages are the library packages that may depend on k8s.io/.
var kubePackages = map[string]bool{
	"attest/k8spsat/psatserver": true,
	"registry/k8sreg":           true,
}

// mayUseKube reports whether pkg may depend on k8s.io/.
func mayUseKube(pkg string) bool {
	return program(pkg) != "" || internalKind(pkg) == internalTesting || kubePackages[strings.TrimPrefix(pkg, module+"/")]
}

// layer gives the place of a package in the import map of
// docs/ARCHITECTURE.md. A package may import module packages of a lower layer
// only, plus internal packages; bundle packages may also import each other,
// because a SPIFFE bundle is made of the other three kinds.
func layer(pkg string) (int, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	switch {
	case rel == "spiffeid", rel == "logger":
		return 0, true
	case rel == "attest", rel == "attest/internal/cgroups", rel == "attest/internal/azuremeta", rel == "attest/internal/agentpath",
		rel == "server/internal/httpsendpoint", rel == "server/internal/storerun":
		return 1, true
	case rel == "registry", rel == "attest/unix":
		return 2, true
	case rel == "attest/tpm":
		return 3, true
	case rel == "exchange":
		return 3, true
	case rel == "attest/jointoken", rel == "attest/x509pop", rel == "attest/awsiid", rel == "attest/gcpiit", rel == "attest/azuremsi", rel == "attest/azureimds", rel == "attest/docker", rel == "attest/k8s", rel == "attest/k8spsat", rel == "admin/internal/wire",
		rel == "nodeapi/internal/wire",
		rel == "nodeapi/nodeserver/internal/agentcache", rel == "server/internal/prune":
		return 3, true
	case strings.HasPrefix(rel, "registry/"):
		return 3, true
	case strings.HasPrefix(rel, "bundle/"), strings.HasPrefix(rel, "exp/bundle/"):
		return 1, true
	case strings.HasPrefix(rel, "svid/"), strings.HasPrefix(rel, "exp/svid/"):
		return 2, true
	case rel == "ca", rel == "spiffetls/tlsconfig", rel == "exp/wpt":
		return 3, true
	case rel == "workloadapi", rel == "spiffegrpc/grpccredentials", rel == "workloadapi/endpoint", rel == "exp/oauthsvid", rel == "launch", rel == "admin", rel == "admin/adminserver/internal/admission",
		rel == "ca/keymanager", rel == "ca/keymanager/pkcs11", rel == "ca/keymanager/tpm", rel == "ca/upstream", rel == "ca/upstream/vault", rel == "nodeapi", rel == "federation",
		rel == "nodeapi/nodeserver/internal/authz", rel == "nodeapi/nodeserver/internal/syncstate",
		rel == "attest/k8spsat/psatserver",
		rel == "agent/internal/replica", rel == "agent/internal/trust":
		return 4, true
	case rel == "spiffetls", rel == "ca/rotation", rel == "nodeapi/nodeserver", rel == "workloadapi/endpoint/sds", rel == "ca/upstream/nested",
		rel == "admin/adminserver", rel == "agent/internal/datadir":
		return 5, true
	case rel == "issuer/internal/svidcheck", rel == "issuer/internal/tokencache":
		return 4, true
	case strings.HasPrefix(rel, "issuer/internal/"):
		return 5, true
	case rel == "issuer", rel == "server/internal/trust", rel == "server/internal/fedpoll", rel == "server/internal/mint", rel == "server/internal/datadir":
		return 6, true
	case rel == "server", rel == "agent/internal/workloadfile", rel == "agent/internal/signer":
		return 7, true
	case rel == "agent/internal/saved":
		return 8, true
	case rel == "agent":
		return 9, true
	case strings.HasPrefix(rel, "examples/"):
		return 10, true
	}
	return 0, false
}

func isBundle(pkg string) bool {
	rel := strings.TrimPrefix(pkg, module+"/")
	return strings.HasPrefix(rel, "bundle/") || strings.HasPrefix(rel, "exp/bundle/")
}

// Kinds of internal package. Helpers are the bottom layer: they may import
// layer 0 and other helpers only, and anything in the module may import
// them. Test-only packages, under internal/testing, may import any library
// package, but only tests (and other test-only packages) may import them.
const (
	notInternal = iota
	internalHelper
	internalTesting
)

func internalKind(pkg string) int {
	switch rel := strings.TrimPrefix(pkg, module+"/"); {
	case rel == "internal/testing" || strings.HasPrefix(rel, "internal/testing/"):
		return internalTesting
	case strings.HasPrefix(rel, "internal/"):
		return internalHelper
	}
	return notInternal
}

// program returns the directory of the program an examples package belongs
// to ("examples/spiffe-server" for examples/spiffe-server/cli), or "" for a
// package outside examples/.
func program(pkg string) string {
	rel, ok := strings.CutPrefix(pkg, module+"/")
	if !ok || !strings.HasPrefix(rel, "examples/") {
		return ""
	}
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[0] + "/" + parts[1]
}

// importViolation says why the non-test files of pkg must not import imp,
// or returns "" if they may.
func importViolation(pkg, imp string) string {
	switch {
	case strings.HasPrefix(imp, "github.com/spiffe/go-spiffe"):
		return "go-spiffe must stay out of the module (only conformance/ uses it)"
	case strings.HasPrefix(imp, module+"/conformance"):
		return "conformance/ is a nested module that tests this one"
	case strings.HasPrefix(imp, prometheus) && program(pkg) == "":
		return promRule
	case strings.HasPrefix(imp, kubernetes) && !mayUseKube(pkg):
		return kubeRule
	case !strings.HasPrefix(imp, module+"/"):
		return ""
	case program(imp) != "":
		// Programs share only examples/internal; each keeps the rest of
		// its code to itself, and the library never imports a program.
		if program(pkg) == "" {
			return "the library must not import examples/"
		}
		if program(imp) != "examples/internal" && program(imp) != program(pkg) {
			return "a program may import examples/internal and its own packages only"
		}
		return ""
	case internalKind(imp) == internalTesting:
		if internalKind(pkg) != internalTesting {
			return "internal/testing holds test-only packages: import them from _test.go files only"
		}
		return ""
	case internalKind(pkg) == internalHelper:
		if internalKind(imp) == internalHelper {
			return ""
		}
		if l, ok := layer(imp); ok && l == 0 {
			return ""
		}
		return "internal helpers are the bottom layer: they may import layer 0 (spiffeid, logger) and other internal helpers only"
	case internalKind(imp) == internalHelper, internalKind(pkg) == internalTesting:
		return ""
	case side(pkg) != "" && side(imp) != "" && side(pkg) != side(imp):
		return "the agent and the server are the two sides of the node protocol: neither imports the other's packages"
	}
	myLayer, ok := layer(pkg)
	if !ok {
		return ""
	}
	impLayer, ok := layer(imp)
	if !ok {
		return ""
	}
	if impLayer >= myLayer && !(isBundle(pkg) && isBundle(imp)) {
		return fmt.Sprintf("layer %d must not import layer %d", myLayer, impLayer)
	}
	return ""
}

// side returns "agent" or "server" for the packages of the node agent or
// the issuing server (the package and those under it), "" for the others.
// The layers put the agent above the server, since its parts sit on more
// layers; side keeps the two apart all the same.
func side(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	for _, s := range []string{"agent", "server"} {
		if rel == s || strings.HasPrefix(rel, s+"/") {
			return s
		}
	}
	return ""
}

// TestImportMap enforces the import map of docs/ARCHITECTURE.md on every
// package of the module: the direction of imports between the library's
// packages, internal helpers at the bottom, test-only packages out of
// non-test code, and no library package depending on go-spiffe, on
// examples or on the conformance module.
func TestImportMap(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}} |{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	packages := 0
	for sc.Scan() {
		direct, deps, _ := strings.Cut(sc.Text(), "|")
		fields := strings.Fields(direct)
		pkg, imports := fields[0], fields[1:]
		packages++
		// Not even through another library: what a library package
		// links, every program that embeds it links.
		if program(pkg) == "" {
			for _, dep := range strings.Fields(deps) {
				if strings.HasPrefix(dep, prometheus) {
					t.Errorf("%s depends on %s: %s", pkg, dep, promRule)
					break
				}
			}
		}
		if !mayUseKube(pkg) {
			for _, dep := range strings.Fields(deps) {
				if strings.HasPrefix(dep, kubernetes) {
					t.Errorf("%s depends on %s: %s", pkg, dep, kubeRule)
					break
				}
			}
		}
		if _, layered := layer(pkg); !layered && pkg != module && internalKind(pkg) == notInternal {
			t.Errorf("%s is not in the import map: add it to layer() and to docs/ARCHITECTURE.md", pkg)
		}
		for _, imp := range imports {
			if why := importViolation(pkg, imp); why != "" {
				t.Errorf("%s must not import %s: %s", pkg, imp, why)
			}
		}
	}
	if packages < 2 {
		t.Fatalf("go list found %d packages; the test is not looking at the module", packages)
	}
}

// TestImportViolation checks the rules of TestImportMap on imports that
// break them, so that a rule that stopped catching anything would fail here.
func TestImportViolation(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	tests := []struct {
		pkg, imp string
		allowed  bool
	}{
		{m("svid/x509svid"), m("bundle/x509bundle"), true},
		{m("bundle/x509bundle"), m("svid/x509svid"), false},
		{m("bundle/spiffebundle"), m("bundle/jwtbundle"), true},
		{m("server"), m("agent"), false},
		{m("agent"), m("server"), false},
		{m("agent"), m("server/internal/trust"), false},
		{m("agent/internal/trust"), m("server/internal/trust"), false},
		{m("server/internal/mint"), m("agent/internal/signer"), false},
		{m("spiffeid"), m("internal/pemutil"), true},
		{m("agent"), "github.com/spiffe/go-spiffe/v2/spiffeid", false},
		{m("agent"), m("conformance/internal/workloadtest"), false},
		// The conformance kit lives in the nested module: no program of
		// this module may import it (its program is in conformance/cmd).
		{m("examples/spiffe-agent"), m("conformance/kit"), false},
		// The node protocol: the server side imports the protocol, the
		// client never the server; both share the wire conversions.
		{m("nodeapi/nodeserver"), m("nodeapi"), true},
		{m("nodeapi"), m("nodeapi/nodeserver"), false},
		{m("nodeapi/nodeserver"), m("nodeapi/internal/wire"), true},
		{m("nodeapi/internal/wire"), m("nodeapi"), false},
		// The admin API: the server side imports the API and its client,
		// never the other way; both share the JSON form.
		{m("admin"), m("admin/internal/wire"), true},
		{m("admin/internal/wire"), m("admin"), false},
		{m("admin/adminserver"), m("admin"), true},
		{m("admin/adminserver"), m("admin/internal/wire"), true},
		{m("admin/adminserver"), m("admin/adminserver/internal/admission"), true},
		{m("admin"), m("admin/adminserver"), false},
		{m("admin/adminserver/internal/admission"), m("admin/adminserver"), false},
		{m("admin/adminserver/internal/admission"), m("admin/internal/wire"), true},
		{m("server"), m("admin/adminserver"), true},
		// SDS sits on the Workload API's endpoint; the agent serves it.
		{m("workloadapi/endpoint/sds"), m("workloadapi/endpoint"), true},
		{m("agent"), m("workloadapi/endpoint/sds"), true},
		{m("workloadapi/endpoint"), m("workloadapi/endpoint/sds"), false},
		{m("workloadapi/endpoint/sds"), m("issuer"), false},
		// The parts of the agent sit below it and never import it.
		{m("agent"), m("agent/internal/replica"), true},
		{m("agent/internal/replica"), m("agent"), false},
		{m("agent"), m("agent/internal/trust"), true},
		{m("agent/internal/trust"), m("agent"), false},
		{m("agent/internal/trust"), m("issuer"), false},
		{m("agent"), m("agent/internal/datadir"), true},
		{m("agent/internal/datadir"), m("nodeapi"), true},
		{m("agent/internal/datadir"), m("agent"), false},
		{m("agent/internal/datadir"), m("internal/publickey"), true},
		{m("internal/publickey"), m("agent/internal/datadir"), false},
		{m("agent"), m("agent/internal/workloadfile"), true},
		{m("agent/internal/workloadfile"), m("agent/internal/datadir"), true},
		{m("agent/internal/workloadfile"), m("issuer"), true},
		{m("agent/internal/workloadfile"), m("agent"), false},
		{m("agent/internal/datadir"), m("agent/internal/workloadfile"), false},
		{m("agent/internal/workloadfile"), m("internal/testing/workloadsv1test"), false},
		{m("internal/testing/workloadsv1test"), m("issuer"), true},
		{m("agent"), m("agent/internal/saved"), true},
		{m("agent/internal/saved"), m("agent/internal/workloadfile"), true},
		{m("agent/internal/saved"), m("agent/internal/trust"), true},
		{m("agent/internal/saved"), m("agent"), false},
		{m("agent/internal/workloadfile"), m("agent/internal/saved"), false},
		{m("agent"), m("agent/internal/signer"), true},
		{m("agent/internal/signer"), m("issuer"), true},
		{m("agent/internal/signer"), m("agent"), false},
		// Internal helpers are the bottom layer.
		{m("internal/bundleset"), m("spiffeid"), true},
		{m("internal/keyset"), m("internal/jwkutil"), true},
		{m("internal/bundleset"), m("bundle/x509bundle"), false},
		{m("internal/unixsock"), m("workloadapi/endpoint"), false},
		{m("internal/pemutil"), m("examples/internal/metrics"), false},
		// Test-only packages: they may import the library, only tests may
		// import them.
		{m("internal/testing/testca"), m("svid/x509svid"), true},
		{m("internal/testing/keysettest"), m("internal/keyset"), true},
		{m("internal/testing/pbtest"), m("internal/testing/testca"), true},
		{m("svid/x509svid"), m("internal/testing/testca"), false},
		{m("internal/jwkutil"), m("internal/testing/testca"), false},
		{m("examples/spiffe-server/cli"), m("internal/testing/pgtest"), false},
		{m("registry/sqlstore"), m("internal/testing/mysqltest"), false},
		{m("internal/testing/testca"), m("examples/spiffe-server/cli"), false},
		// Programs.
		{m("examples/spiffe-server"), m("examples/spiffe-server/cli"), true},
		{m("examples/spiffe-server/cli"), m("examples/internal/metrics"), true},
		{m("examples/spiffe-agent/cli"), m("server"), true},
		{m("examples/spiffe-agent/cli"), m("examples/spiffe-server/cli"), false},
		{m("server"), m("examples/internal/metrics"), false},
		// The parts of the server sit below it and never import it.
		{m("server"), m("server/internal/trust"), true},
		{m("server/internal/trust"), m("server"), false},
		{m("server"), m("server/internal/fedpoll"), true},
		{m("server/internal/fedpoll"), m("server"), false},
		{m("server"), m("server/internal/httpsendpoint"), true},
		{m("server/internal/httpsendpoint"), m("server/internal/trust"), false},
		{m("server/internal/mint"), m("server/internal/trust"), false},
		{m("server"), m("server/internal/datadir"), true},
		{m("server/internal/prune"), m("server/internal/datadir"), false},
		{m("server/internal/storerun"), m("registry"), false},
		{module, m("examples/spiffe-agent/cli"), false},
		// Prometheus: the programs only.
		{m("examples/spiffe-agent/cli"), "github.com/prometheus/client_golang/prometheus", true},
		{m("examples/internal/metrics"), "github.com/prometheus/client_golang/prometheus/promhttp", true},
		{m("nodeapi"), "github.com/prometheus/client_golang/prometheus", false},
		{m("internal/unixsock"), "github.com/prometheus/common/expfmt", false},
		{module, "github.com/prometheus/client_golang/prometheus", false},
		// Kubernetes libraries: the packages that talk to an API server,
		// test-only packages and programs only.
		{m("attest/k8spsat/psatserver"), "k8s.io/client-go/rest", true},
		{m("attest/k8spsat/psatserver"), m("attest/k8spsat"), true},
		{m("attest/k8spsat"), "k8s.io/client-go/rest", false},
		{m("attest/k8spsat"), m("attest/k8spsat/psatserver"), false},
		{m("internal/testing/kubetest"), "k8s.io/client-go/kubernetes", true},
		{m("examples/spiffe-server/cli"), "k8s.io/client-go/rest", true},
		{m("registry/k8sreg"), "k8s.io/client-go/informers", true},
		{m("registry/k8sreg"), m("registry"), true},
		{m("registry/k8sreg"), m("server"), false},
		{m("registry/index"), "k8s.io/client-go/informers", false},
		{m("server"), "k8s.io/client-go/rest", false},
		{m("agent"), "k8s.io/api/core/v1", false},
		{m("attest"), "k8s.io/apimachinery/pkg/types", false},
		{m("internal/pemutil"), "k8s.io/client-go/util/cert", false},
		{m("attest/x509pop"), m("attest/k8spsat"), false},
		{m("attest/tpm"), m("attest"), true},
		{m("attest/tpm"), m("server"), false},
		{m("attest/tpm"), m("internal/testing/swtpmtest"), false},
		{m("internal/testing/swtpmtest"), m("internal/pemutil"), true},
		{m("attest/awsiid"), m("attest"), true},
		{m("ca/keymanager/pkcs11"), m("ca"), true},
		{m("ca/keymanager/pkcs11"), m("ca/rotation"), false},
		{m("ca/keymanager/pkcs11"), m("internal/testing/softhsmtest"), false},
		{m("ca/keymanager/tpm"), m("attest/tpm"), true},
		{m("ca/keymanager/tpm"), m("ca/rotation"), false},
		{m("attest/tpm"), m("ca/keymanager/tpm"), false},
		{m("attest/awsiid"), m("attest/x509pop"), false},
		{m("attest/gcpiit"), m("attest"), true},
		{m("attest/gcpiit"), m("internal/jwkutil"), true},
		{m("attest/gcpiit"), m("attest/awsiid"), false},
		{m("attest/gcpiit"), m("internal/testing/gcemdtest"), false},
		{m("attest/azuremsi"), m("attest/internal/azuremeta"), true},
		{m("attest/azuremsi"), m("attest/awsiid"), false},
		{m("attest/azureimds"), m("attest/internal/azuremeta"), true},
		{m("attest/azureimds"), m("attest/azuremsi"), false},
		{m("attest/internal/azuremeta"), m("attest"), false},
		{m("attest/awsiid"), m("internal/bodylimit"), true},
		{m("attest/gcpiit"), m("internal/bodylimit"), true},
		{m("internal/bodylimit"), m("attest"), false},
		{m("attest/awsiid"), m("internal/testing/awstest"), false},
		{m("attest/azuremsi"), m("internal/bodylimit"), true},
		{m("attest/azuremsi"), m("internal/testing/azuretest"), false},
	}
	for _, tt := range tests {
		why := importViolation(tt.pkg, tt.imp)
		if tt.allowed && why != "" {
			t.Errorf("%s importing %s refused (%s); it is allowed", tt.pkg, tt.imp, why)
		}
		if !tt.allowed && why == "" {
			t.Errorf("%s importing %s allowed; it must be refused", tt.pkg, tt.imp)
		}
	}
}
