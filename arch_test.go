package spiffekit_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/spiffekit/spiffekit"

// layer gives the place of a package in the import map of
// docs/ARCHITECTURE.md. A package may import module packages of a lower layer
// only, plus internal packages; bundle packages may also import each other,
// because a SPIFFE bundle is made of the other three kinds.
func layer(pkg string) (int, bool) {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	switch {
	case rel == "spiffeid", rel == "logger":
		return 0, true
	case rel == "attest", rel == "registry":
		return 1, true
	case rel == "attest/unix":
		return 2, true
	case rel == "attest/jointoken", rel == "attest/x509pop", rel == "admin":
		return 3, true
	case strings.HasPrefix(rel, "registry/"):
		return 2, true
	case strings.HasPrefix(rel, "bundle/"), strings.HasPrefix(rel, "exp/bundle/"):
		return 1, true
	case strings.HasPrefix(rel, "svid/"), strings.HasPrefix(rel, "exp/svid/"):
		return 2, true
	case rel == "ca", rel == "spiffetls/tlsconfig":
		return 3, true
	case rel == "workloadapi", rel == "spiffegrpc/grpccredentials", rel == "workloadapi/endpoint",
		rel == "ca/keymanager", rel == "ca/upstream", rel == "nodeapi", rel == "federation":
		return 4, true
	case rel == "spiffetls", rel == "ca/rotation":
		return 5, true
	case rel == "issuer":
		return 6, true
	case rel == "agent", rel == "server":
		return 7, true
	case strings.HasPrefix(rel, "examples/"):
		return 8, true
	}
	return 0, false
}

func isBundle(pkg string) bool {
	rel := strings.TrimPrefix(pkg, module+"/")
	return strings.HasPrefix(rel, "bundle/") || strings.HasPrefix(rel, "exp/bundle/")
}

// TestImportMap enforces the direction of imports between the library's
// packages, and that no library package depends on go-spiffe, on examples or on
// the conformance module.
func TestImportMap(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	packages := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, imports := fields[0], fields[1:]
		packages++
		myLayer, layered := layer(pkg)
		if rel := strings.TrimPrefix(pkg, module); !layered && rel != "" && !strings.HasPrefix(rel, "/internal/") {
			t.Errorf("%s is not in the import map: add it to layer() and to docs/ARCHITECTURE.md", pkg)
		}
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(imp, "github.com/spiffe/go-spiffe"):
				t.Errorf("%s imports %s: go-spiffe must stay out of the library", pkg, imp)
			case strings.HasPrefix(imp, module+"/examples"), strings.HasPrefix(imp, module+"/conformance"):
				t.Errorf("%s imports %s", pkg, imp)
			case !strings.HasPrefix(imp, module+"/"):
				continue
			case strings.HasPrefix(imp, module+"/internal/"):
				continue
			}
			impLayer, ok := layer(imp)
			if !ok || !layered {
				continue
			}
			if impLayer >= myLayer && !(isBundle(pkg) && isBundle(imp)) {
				t.Errorf("%s (layer %d) must not import %s (layer %d)", pkg, myLayer, imp, impLayer)
			}
		}
	}
	if packages < 2 {
		t.Fatalf("go list found %d packages; the test is not looking at the module", packages)
	}
}
