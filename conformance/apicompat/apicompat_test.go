package apicompat_test

import (
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/apicompat"
)

const (
	upstreamModule = "github.com/spiffe/go-spiffe/v2"
	ourModule      = "github.com/spiffekit/spiffekit"
)

// sharedPackages lists, relative to each module root, every package that
// spiffekit shares with go-spiffe v2.9.0 and must keep source-compatible.
// Adding a package is one line.
var sharedPackages = []string{
	"spiffeid",
	"svid/x509svid",
	"svid/jwtsvid",
	"bundle/x509bundle",
	"bundle/jwtbundle",
	"bundle/spiffebundle",
	"exp/bundle/witbundle",
	"exp/svid/witsvid",
	"logger",
	"workloadapi",
	"spiffetls",
	"spiffetls/tlsconfig",
	"spiffegrpc/grpccredentials",
	"federation",
}

// TestSourceCompatibleWithGoSPIFFE checks that every exported identifier of
// each shared go-spiffe package exists in ours with the same kind and an
// identical signature once import paths are mapped.
func TestSourceCompatibleWithGoSPIFFE(t *testing.T) {
	patterns := make([]string, 0, 2*len(sharedPackages))
	for _, p := range sharedPackages {
		patterns = append(patterns, upstreamModule+"/"+p, ourModule+"/"+p)
	}
	pkgs, err := apicompat.Load(".", patterns...)
	if err != nil {
		t.Errorf("some packages did not load:\n%v", err)
	}
	mapPath := apicompat.PrefixMapper(upstreamModule, ourModule)

	total := 0
	for _, p := range sharedPackages {
		t.Run(p, func(t *testing.T) {
			ref, ok := pkgs[upstreamModule+"/"+p]
			require.True(t, ok, "go-spiffe package %s did not load", p)
			cand, ok := pkgs[ourModule+"/"+p]
			if !ok {
				t.Errorf("package %s/%s is missing or does not type-check", ourModule, p)
				total++
				return
			}
			t.Logf("%s: %d exported package-level identifiers in go-spiffe", p, countExported(ref))
			diffs := apicompat.Compare(ref, cand, mapPath)
			for _, d := range diffs {
				t.Errorf("%s.%s", p, d)
			}
			total += len(diffs)
		})
	}
	if total > 0 {
		t.Errorf("%d incompatibilities with go-spiffe v2.9.0 across %d packages", total, len(sharedPackages))
	}
}

// TestCompareDetectsIncompatibilities runs the checker on a fake pair of
// packages, so a checker that reports nothing cannot pass unnoticed.
func TestCompareDetectsIncompatibilities(t *testing.T) {
	const base = "github.com/spiffekit/spiffekit/conformance/apicompat/testdata"
	touchTestdata(t)
	pkgs, err := apicompat.Load(".", "./testdata/ref/fake", "./testdata/cand/fake")
	require.NoError(t, err)
	ref, cand := pkgs[base+"/ref/fake"], pkgs[base+"/cand/fake"]
	require.NotNil(t, ref)
	require.NotNil(t, cand)

	diffs := apicompat.Compare(ref, cand, apicompat.PrefixMapper(base+"/ref", base+"/cand"))
	got := make(map[string]string, len(diffs))
	for _, d := range diffs {
		got[d.Item] = d.Problem
		t.Log(d)
	}
	want := map[string]string{
		"Gone":              "missing",
		"Changed":           "signature differs",
		"NowVar":            "kind differs",
		"Answer":            "constant value differs",
		"Box.Dropped":       "missing struct field",
		"Box.Value":         "only on a pointer receiver",
		"Box.Lost":          "missing method",
		"Source.Close":      "extra interface method",
		"Mode (underlying)": "signature differs",
		"Variadic":          "signature differs",
		"Pair":              "type parameters differ",
		"WasStruct":         "want struct",
		"WasIface":          "want interface",
		"Wrapper.Thing":     "embedding differs",
		"AliasChanged":      "signature differs",
		"Reader.Name":       "missing interface method",
		"Number":            "interface type set differs",
		"Open":              "interface is sealed",
	}
	for item, problem := range want {
		if assert.Contains(t, got, item) {
			assert.Contains(t, got[item], problem, item)
		}
	}
	assert.Len(t, got, len(want), "unexpected diffs: identical items must not be reported")
}

// touchTestdata reads every file under testdata, so that the test cache,
// which does not see what "go list" reads, is invalidated when they change.
func touchTestdata(t *testing.T) {
	t.Helper()
	require.NoError(t, filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		_, err = os.ReadFile(path)
		return err
	}))
}

func TestCompareIdenticalPackage(t *testing.T) {
	const base = "github.com/spiffekit/spiffekit/conformance/apicompat/testdata"
	pkgs, err := apicompat.Load(".", "./testdata/ref/fake")
	require.NoError(t, err)
	ref := pkgs[base+"/ref/fake"]
	require.NotNil(t, ref)
	assert.Empty(t, apicompat.Compare(ref, ref, func(p string) string { return p }))
}

func TestLoadReportsMissingPackage(t *testing.T) {
	pkgs, err := apicompat.Load(".", "./testdata/ref/fake", "./testdata/nonexistent")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonexistent")
	assert.Len(t, pkgs, 1, "packages that load are still returned")
}

func TestPrefixMapper(t *testing.T) {
	m := apicompat.PrefixMapper(upstreamModule, ourModule)
	assert.Equal(t, ourModule, m(upstreamModule))
	assert.Equal(t, ourModule+"/spiffeid", m(upstreamModule+"/spiffeid"))
	assert.Equal(t, upstreamModule+"x/spiffeid", m(upstreamModule+"x/spiffeid"))
	assert.Equal(t, "crypto/x509", m("crypto/x509"))
}

func countExported(p *types.Package) int {
	n := 0
	for _, name := range p.Scope().Names() {
		if p.Scope().Lookup(name).Exported() {
			n++
		}
	}
	return n
}
