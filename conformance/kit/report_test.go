package kit_test

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

var update = flag.Bool("update", false, "write the rules table of docs/CONFORMANCE.md")

const (
	conformanceDoc = "../../docs/CONFORMANCE.md"
	tableStart     = "<!-- rules table: generated from conformance/kit's registry (cd conformance && go test ./kit -run TestRulesTable -update) -->\n"
	tableEnd       = "<!-- end of rules table -->\n"
)

// TestRulesTable keeps the table of docs/CONFORMANCE.md equal to the
// registry.
func TestRulesTable(t *testing.T) {
	var table bytes.Buffer
	require.NoError(t, kit.WriteRulesTable(&table))
	doc, err := os.ReadFile(conformanceDoc)
	require.NoError(t, err)
	start := bytes.Index(doc, []byte(tableStart))
	end := bytes.Index(doc, []byte(tableEnd))
	require.True(t, start >= 0 && end > start, "docs/CONFORMANCE.md lacks the table's markers")
	current := doc[start+len(tableStart) : end]
	if *update {
		out := append(append(append([]byte{}, doc[:start+len(tableStart)]...), table.Bytes()...), doc[end:]...)
		require.NoError(t, os.WriteFile(conformanceDoc, out, 0o644))
		return
	}
	assert.Equal(t, table.String(), string(current), "docs/CONFORMANCE.md is out of date: run go test ./kit -run TestRulesTable -update in conformance/")
}

func TestRules(t *testing.T) {
	rules := kit.Rules()
	require.NotEmpty(t, rules)
	seen := map[string]bool{}
	for _, r := range rules {
		assert.False(t, seen[r.ID], "%s twice", r.ID)
		seen[r.ID] = true
		assert.Contains(t, []kit.Level{kit.Must, kit.Should, kit.May}, r.Level, r.ID)
		assert.NotEmpty(t, r.Section, r.ID)
		assert.NotEmpty(t, r.Text, r.ID)
		assert.NotEmpty(t, r.Modes, r.ID)
		got, ok := kit.LookupRule(r.ID)
		assert.True(t, ok)
		assert.Equal(t, r, got)
	}
	assert.Equal(t, "X509 rule 1", rules[0].ID)
	i9a, i11a := -1, -1
	for i, r := range rules {
		switch r.ID {
		case "X509 rule 9a":
			i9a = i
		case "X509 rule 11a":
			i11a = i
		}
	}
	assert.Less(t, i9a, i11a, "numbers sort as numbers")
	_, ok := kit.LookupRule("X509 rule 99")
	assert.False(t, ok)
	rules[0].Modes[0] = "changed"
	assert.NotEqual(t, kit.Mode("changed"), kit.Rules()[0].Modes[0], "Rules returns copies")
}

// sampleReport has one result of each verdict.
func sampleReport(t *testing.T) *kit.Report {
	root := testca.New(t, exampleTD)
	chain, key := root.NewLeaf(t, workload, testca.WithTemplate(func(c *x509.Certificate) { c.IsCA = true; c.ExtKeyUsage = nil }))
	r := kit.NewReport(kit.ModeX509, "svid.pem")
	r.CheckX509SVID(kit.X509SVID{Chain: chain, Key: pkcs8(t, key)}, time.Now())
	return r
}

func TestWriteText(t *testing.T) {
	r := sampleReport(t)
	var b strings.Builder
	require.NoError(t, r.Write(&b, kit.FormatText))
	out := b.String()
	assert.Contains(t, out, "SPIFFE conformance: x509 svid.pem\n")
	assert.Regexp(t, `(?m)^FAIL +X509 rule 4 +MUST +leaf spiffe://example.org/workload +leaf cA=true`, out)
	assert.Regexp(t, `(?m)^DEVIATION ALLOWED +X509 rule 9a +SHOULD`, out)
	assert.Regexp(t, `(?m)^NOT APPLICABLE +X509 rule 21 +MUST .* no bundle given$`, out)
	assert.Regexp(t, `(?m)^6 pass, 1 fail, 3 not applicable, 1 deviation allowed; MUST rules failed: X509 rule 4$`, out)
}

func TestWriteJSON(t *testing.T) {
	r := sampleReport(t)
	var b bytes.Buffer
	require.NoError(t, r.Write(&b, kit.FormatJSON))
	var got struct {
		Mode        string         `json:"mode"`
		Target      string         `json:"target"`
		Results     []kit.Result   `json:"results"`
		Counts      map[string]int `json:"counts"`
		FailedRules []string       `json:"failed_rules"`
	}
	require.NoError(t, json.Unmarshal(b.Bytes(), &got))
	assert.Equal(t, "x509", got.Mode)
	assert.Equal(t, r.Results, got.Results)
	assert.Equal(t, map[string]int{"pass": 6, "fail": 1, "not applicable": 3, "deviation allowed": 1}, got.Counts)
	assert.Equal(t, []string{"X509 rule 4"}, got.FailedRules)

	b.Reset()
	require.NoError(t, kit.NewReport(kit.ModeJWT, "t").WriteJSON(&b))
	assert.Contains(t, b.String(), `"failed_rules": []`)
}

func TestWriteJUnit(t *testing.T) {
	r := sampleReport(t)
	var b bytes.Buffer
	require.NoError(t, r.Write(&b, kit.FormatJUnit))
	var got struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Cases    []struct {
				Name      string `xml:"name,attr"`
				ClassName string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
				} `xml:"failure"`
				Skipped   *struct{} `xml:"skipped"`
				SystemOut string    `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(b.Bytes(), &got))
	require.Len(t, got.Suites, 1)
	s := got.Suites[0]
	assert.Equal(t, len(r.Results), s.Tests)
	assert.Equal(t, 1, s.Failures)
	assert.Equal(t, 3, s.Skipped)
	var failures, deviations int
	for _, c := range s.Cases {
		if c.Failure != nil {
			failures++
			assert.Equal(t, "X509 rule 4", c.ClassName)
			assert.Equal(t, "MUST", c.Failure.Type)
			assert.Contains(t, c.Failure.Message, "cA=true")
		}
		if strings.HasPrefix(c.SystemOut, "deviation allowed (SHOULD)") {
			deviations++
		}
	}
	assert.Equal(t, 1, failures)
	assert.Equal(t, 1, deviations)
}

func TestWriteUnknownFormat(t *testing.T) {
	assert.ErrorContains(t, kit.NewReport(kit.ModeJWT, "t").Write(&bytes.Buffer{}, "yaml"), `unknown report format "yaml"`)
}

func TestReportMergeAndByRule(t *testing.T) {
	a := sampleReport(t)
	b := kit.NewReport(kit.ModeX509, "other")
	b.Merge(a)
	assert.Equal(t, a.Results, b.Results)
	assert.Len(t, b.ByRule("X509 rule 15"), 2)
	assert.True(t, b.Failed())
}
