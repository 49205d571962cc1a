package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// runProgram runs the program with args and returns its exit status,
// standard output and standard error.
func runProgram(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func TestX509(t *testing.T) {
	root := testca.New(t, td)
	chain, key := root.NewLeaf(t, spiffeid.RequireFromPath(td, "/w"))
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	svid := writeFile(t, "svid.pem", append(pemCerts(chain...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...))
	roots := writeFile(t, "roots.pem", pemCerts(root.Cert()))

	code, out, errOut := runProgram(t, "", "x509", "-bundle", "example.org="+roots, svid)
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, "PASS +X509 rule 21", out)
	assert.Contains(t, out, "no MUST rule failed")

	// The same roots as a SPIFFE bundle document.
	doc := writeFile(t, "bundle.json", []byte(`{"keys":[{"use":"x509-svid","kty":"EC","x5c":["`+b64(root.Cert().Raw)+`"]},{"use":"jwt-svid","kid":"a"}]}`))
	code, out, _ = runProgram(t, "", "x509", "-bundle", "example.org="+doc, "-format", "json", svid)
	assert.Equal(t, exitPass, code)
	var got struct {
		Counts map[string]int `json:"counts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Zero(t, got.Counts["fail"])
	assert.Zero(t, got.Counts["not applicable"]-1, "only X509 rule 3 (the subject is not empty)")

	// A CA leaf: exit status 1, the JUnit report written to a file.
	bad, _ := root.NewLeaf(t, spiffeid.RequireFromPath(td, "/w"), testca.WithTemplate(func(c *x509.Certificate) { c.IsCA = true }))
	report := filepath.Join(t.TempDir(), "report.xml")
	code, out, _ = runProgram(t, "", "x509", "-format", "junit", "-o", report, writeFile(t, "bad.pem", pemCerts(bad...)))
	assert.Equal(t, exitFail, code)
	assert.Empty(t, out)
	xml, err := os.ReadFile(report)
	require.NoError(t, err)
	assert.Contains(t, string(xml), `<failure message="leaf cA=true`)

	for name, args := range map[string][]string{
		"no file":          {"x509"},
		"missing file":     {"x509", filepath.Join(t.TempDir(), "none")},
		"not PEM":          {"x509", writeFile(t, "x", []byte("x"))},
		"bad bundle flag":  {"x509", "-bundle", "example.org", svid},
		"missing bundle":   {"x509", "-bundle", "example.org=" + filepath.Join(t.TempDir(), "none"), svid},
		"bad bundle JSON":  {"x509", "-bundle", "example.org=" + writeFile(t, "b.json", []byte("{")), svid},
		"bad x5c":          {"x509", "-bundle", "example.org=" + writeFile(t, "b.json", []byte(`{"keys":[{"use":"x509-svid","x5c":["!"]}]}`)), svid},
		"bad x5c cert":     {"x509", "-bundle", "example.org=" + writeFile(t, "b.json", []byte(`{"keys":[{"use":"x509-svid","x5c":["AAAA"]}]}`)), svid},
		"unknown format":   {"x509", "-format", "yaml", svid},
		"unwritable -o":    {"x509", "-o", filepath.Join(t.TempDir(), "no", "such", "dir"), svid},
		"unknown mode":     {"nothing"},
		"no mode":          {},
		"unknown flag":     {"x509", "-nope", svid},
		"two files":        {"bundle", doc, doc},
		"missing previous": {"bundle", "-previous", filepath.Join(t.TempDir(), "none"), doc},
	} {
		code, _, errOut := runProgram(t, "", args...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
		assert.NotEmpty(t, errOut, name)
	}
}

func b64(b []byte) string {
	s, _ := json.Marshal(b) // standard base64, quoted
	return string(s[1 : len(s)-1])
}

func TestBundle(t *testing.T) {
	doc, err := os.ReadFile("../../crossverify/testdata/bundle-section-f.json")
	require.NoError(t, err)
	next := bytes.Replace(doc, []byte(`"spiffe_refresh_hint": 300`), []byte(`"spiffe_refresh_hint": 60`), 1)
	code, out, errOut := runProgram(t, "", "bundle", "-previous", writeFile(t, "old.json", doc), writeFile(t, "new.json", next))
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, "PASS +Bundle rule 8b", out)

	// A rotation that keeps the sequence: Bundle rule 8b fails.
	var d map[string]any
	require.NoError(t, json.Unmarshal(doc, &d))
	d["keys"] = d["keys"].([]any)[:1]
	rotated, err := json.Marshal(d)
	require.NoError(t, err)
	code, out, _ = runProgram(t, "", "bundle", "-previous", writeFile(t, "old.json", doc), writeFile(t, "new.json", rotated))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "MUST rules failed: Bundle rule 8b\n")
}

func TestJWT(t *testing.T) {
	key := testca.NewECKey(t)
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1"}}})
	require.NoError(t, err)
	keys := writeFile(t, "jwks.json", set)
	token := testca.SignJWT(t, key, map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"},
		map[string]any{"sub": "spiffe://example.org/w", "aud": []string{"svc"}, "exp": time.Now().Add(time.Minute).Unix()})

	code, out, errOut := runProgram(t, token+"\n", "jwt", "-bundle", "example.org="+keys, "-audience", "svc", "-")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, "PASS +JWT step S7", out)

	code, out, _ = runProgram(t, "", "jwt", "-audience", "other", writeFile(t, "token", []byte(token)))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "MUST rules failed: JWT rule 7a\n")

	for name, args := range map[string][]string{
		"missing token":  {"jwt", filepath.Join(t.TempDir(), "none")},
		"missing keys":   {"jwt", "-bundle", "example.org=" + filepath.Join(t.TempDir(), "none"), "-"},
		"keys not a set": {"jwt", "-bundle", "example.org=" + writeFile(t, "k", []byte("[")), "-"},
		"no file":        {"jwt"},
	} {
		code, _, errOut := runProgram(t, token, args...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
	}
}

func TestWIT(t *testing.T) {
	signer, workloadKey := testca.NewECKey(t), testca.NewECKey(t)
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: signer.Public(), KeyID: "w1", Use: "wit-svid"},
		{Key: testca.NewECKey(t).Public(), KeyID: "w1", Use: "jwt-svid"}, // not a WIT key: skipped
	}})
	require.NoError(t, err)
	keys := writeFile(t, "bundle.json", set)
	cnf, err := jose.JSONWebKey{Key: workloadKey.Public(), Algorithm: "ES256"}.MarshalJSON()
	require.NoError(t, err)
	var cnfMap map[string]any
	require.NoError(t, json.Unmarshal(cnf, &cnfMap))
	private, err := jose.JSONWebKey{Key: workloadKey, Algorithm: "ES256"}.MarshalJSON()
	require.NoError(t, err)
	token := testca.SignJWT(t, signer, map[string]any{"alg": "ES256", "kid": "w1", "typ": "wit+jwt"},
		map[string]any{"sub": "spiffe://example.org/w", "exp": time.Now().Add(time.Hour).Unix(), "cnf": map[string]any{"jwk": cnfMap}})

	code, out, errOut := runProgram(t, token+"\n", "wit", "-bundle", "example.org="+keys, "-key", writeFile(t, "key.jwk", private), "-")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, "PASS +WIT rule 16b", out)
	assert.Regexp(t, "PASS +WIT rule 17c", out)

	other, err := jose.JSONWebKey{Key: testca.NewECKey(t), Algorithm: "ES256"}.MarshalJSON()
	require.NoError(t, err)
	code, out, _ = runProgram(t, "", "wit", "-key", writeFile(t, "other.jwk", other), writeFile(t, "token", []byte(token)))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "MUST rules failed: WIT rule 17c\n")
	assert.Regexp(t, "NOT APPLICABLE +WIT rule 16b", out, "no bundle given")

	code, out, _ = runProgram(t, "", "wit", "-format", "json", writeFile(t, "jwt", []byte(testca.SignJWT(t, signer,
		map[string]any{"alg": "ES256", "kid": "w1", "typ": "JWT"}, map[string]any{"sub": "spiffe://example.org/w", "aud": "x", "exp": 2e9}))))
	assert.Equal(t, exitFail, code, "a JWT-SVID is no WIT-SVID")
	var report struct {
		FailedRules []string `json:"failed_rules"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &report))
	assert.Equal(t, []string{"WIT rule 2", "WIT rule 6", "WIT rule 12"}, report.FailedRules)

	for name, args := range map[string][]string{
		"missing token":  {"wit", filepath.Join(t.TempDir(), "none")},
		"missing keys":   {"wit", "-bundle", "example.org=" + filepath.Join(t.TempDir(), "none"), "-"},
		"keys not a set": {"wit", "-bundle", "example.org=" + writeFile(t, "k", []byte("[")), "-"},
		"missing key":    {"wit", "-key", filepath.Join(t.TempDir(), "none"), "-"},
		"no file":        {"wit"},
	} {
		code, _, errOut := runProgram(t, token, args...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
	}
}
