package kit_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// sectionF returns bundle.md's example document (section F) as a map to
// change.
func sectionF(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../crossverify/testdata/bundle-section-f.json")
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	return doc
}

func keysOf(doc map[string]any) []any { return doc["keys"].([]any) }

func key(doc map[string]any, i int) map[string]any { return keysOf(doc)[i].(map[string]any) }

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestBundleMustRejectTable runs bundle.md's section E rows, the producer
// rules of section B, through the kit: each change to the example document
// must fail (or deviate on) exactly the rule it breaks.
func TestBundleMustRejectTable(t *testing.T) {
	for _, row := range []struct {
		name       string
		change     func(doc map[string]any)
		raw        string
		failed     []string
		deviations []string
	}{
		{name: "section F as published", change: func(map[string]any) {}},
		{name: "keys absent", change: func(d map[string]any) { delete(d, "keys") }, failed: []string{"Bundle rule 7"}},
		{name: "keys empty", change: func(d map[string]any) { d["keys"] = []any{} }},
		{name: "keys not an array", change: func(d map[string]any) { d["keys"] = map[string]any{} }, failed: []string{"Bundle rule 7"}},
		{name: "a key not an object", change: func(d map[string]any) { d["keys"] = []any{"x"} }, failed: []string{"Bundle rule 7"}},
		{name: "not JSON", raw: "{", failed: []string{"Bundle rule 7"}},
		{name: "JSON after the document", raw: `{"keys":[]} {}`, failed: []string{"Bundle rule 7"}},
		{name: "null", raw: `null`, failed: []string{"Bundle rule 7"}},
		{name: "no spiffe_sequence", change: func(d map[string]any) { delete(d, "spiffe_sequence") }, deviations: []string{"Bundle rule 8a"}},
		{name: "spiffe_sequence -1", change: func(d map[string]any) { d["spiffe_sequence"] = -1 }, deviations: []string{"Bundle rule 8a"}},
		{name: "no spiffe_refresh_hint", change: func(d map[string]any) { delete(d, "spiffe_refresh_hint") }, deviations: []string{"Bundle rule 9"}},
		{name: "spiffe_refresh_hint 1.5", change: func(d map[string]any) { d["spiffe_refresh_hint"] = 1.5 }, deviations: []string{"Bundle rule 9"}},
		{name: "spiffe_refresh_hint -5", change: func(d map[string]any) { d["spiffe_refresh_hint"] = -5 }, deviations: []string{"Bundle rule 9"}},
		{name: "spiffe_refresh_hint string", change: func(d map[string]any) { d["spiffe_refresh_hint"] = "300" }, deviations: []string{"Bundle rule 9"}},
		{name: "unknown top-level member", change: func(d map[string]any) { d["x-extra"] = true }},
		{name: "missing kty", change: func(d map[string]any) { delete(key(d, 1), "kty") }, failed: []string{"Bundle rule 12"}},
		{name: "missing use", change: func(d map[string]any) { delete(key(d, 1), "use") }, failed: []string{"Bundle rule 13"}},
		{name: "use JWT-SVID", change: func(d map[string]any) { key(d, 1)["use"] = "JWT-SVID" }, failed: []string{"Bundle rule 13"}},
		{name: "alg on a key", change: func(d map[string]any) { key(d, 1)["alg"] = "ES256" }, deviations: []string{"Bundle rule 14"}},
		{name: "private member d", change: func(d map[string]any) { key(d, 1)["d"] = "AAAA" }, deviations: []string{"Bundle rule 14"}},
		{name: "x509-svid with kid", change: func(d map[string]any) { key(d, 0)["kid"] = "x" }, failed: []string{"Bundle rule 15"}},
		{name: "x509-svid without x5c", change: func(d map[string]any) { delete(key(d, 0), "x5c") }, failed: []string{"Bundle rule 15"}},
		{name: "x509-svid with two x5c", change: func(d map[string]any) {
			x5c := key(d, 0)["x5c"].([]any)
			key(d, 0)["x5c"] = append(x5c, x5c[0])
		}, failed: []string{"Bundle rule 15"}},
		{name: "x5c not base64", change: func(d map[string]any) { key(d, 0)["x5c"] = []any{"!!"} }, failed: []string{"Bundle rule 15"}},
		{name: "x5c not a certificate", change: func(d map[string]any) { key(d, 0)["x5c"] = []any{"AAAA"} }, failed: []string{"Bundle rule 15"}},
		{name: "x509-svid key not x5c's", change: func(d map[string]any) {
			key(d, 0)["x"], key(d, 0)["y"] = key(d, 1)["x"], key(d, 1)["y"]
		}, failed: []string{"Bundle rule 15"}},
		{name: "jwt-svid without kid", change: func(d map[string]any) { delete(key(d, 1), "kid") }, failed: []string{"Bundle rule 16"}},
		{name: "two jwt-svid keys with one kid", change: func(d map[string]any) { d["keys"] = append(keysOf(d), key(d, 1)) }, failed: []string{"Bundle rule 16"}},
		{name: "wit-svid key sharing a jwt-svid kid", change: func(d map[string]any) {
			wit := map[string]any{}
			for k, v := range key(d, 1) {
				wit[k] = v
			}
			wit["use"] = "wit-svid"
			d["keys"] = append(keysOf(d), wit)
		}, failed: []string{"Bundle rule 17"}},
		{name: "wit-svid without kid", change: func(d map[string]any) {
			d["keys"] = append(keysOf(d), map[string]any{"use": "wit-svid", "kty": "EC"})
		}, failed: []string{"Bundle rule 17"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			doc := []byte(row.raw)
			if row.change != nil {
				d := sectionF(t)
				row.change(d)
				doc = marshal(t, d)
			}
			r := kit.NewReport(kit.ModeBundle, row.name)
			r.CheckBundle("bundle", doc)
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", text(t, r))
		})
	}
}

func TestBundleTooLarge(t *testing.T) {
	r := kit.NewReport(kit.ModeBundle, "large")
	r.CheckBundle("bundle", make([]byte, 5<<20))
	assert.Equal(t, []string{"Bundle rule 7"}, r.FailedRules())
}

// TestBundleUpdate checks Bundle rule 8b: an unsequenced rotation (the
// keys change, the sequence does not) fails.
func TestBundleUpdate(t *testing.T) {
	prev := sectionF(t)
	rotated := sectionF(t)
	rotated["keys"] = keysOf(rotated)[:1]
	unsequenced := marshal(t, rotated)
	rotated["spiffe_sequence"] = 43
	sequenced := marshal(t, rotated)
	unchanged := sectionF(t)
	unchanged["spiffe_refresh_hint"] = 60
	noSeq := sectionF(t)
	delete(noSeq, "spiffe_sequence")

	for _, row := range []struct {
		name       string
		prev, next []byte
		want       kit.Verdict
	}{
		{"rotated, sequence grew", marshal(t, prev), sequenced, kit.Pass},
		{"rotated, same sequence", marshal(t, prev), unsequenced, kit.Fail},
		{"rotated, sequence went down", sequenced, marshal(t, prev), kit.Fail},
		{"keys unchanged, same sequence", marshal(t, prev), marshal(t, unchanged), kit.Pass},
		{"no sequence", marshal(t, noSeq), sequenced, kit.NotApplicable},
		{"earlier not JSON", []byte("{"), sequenced, kit.NotApplicable},
		{"later not JSON", sequenced, []byte("{"), kit.NotApplicable},
	} {
		t.Run(row.name, func(t *testing.T) {
			r := kit.NewReport(kit.ModeBundle, row.name)
			r.CheckBundleUpdate("bundle", row.prev, row.next)
			require.Len(t, r.Results, 1)
			assert.Equal(t, "Bundle rule 8b", r.Results[0].Rule)
			assert.Equal(t, row.want, r.Results[0].Verdict, r.Results[0].Evidence)
		})
	}
}

func TestCheckJWTKeySet(t *testing.T) {
	doc := sectionF(t)
	jwtKey := key(doc, 1)
	set := func(keys ...any) []byte { return marshal(t, map[string]any{"keys": keys}) }
	without := func(m map[string]any, name string) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			if k != name {
				out[k] = v
			}
		}
		return out
	}
	with := func(m map[string]any, name string, v any) map[string]any {
		out := without(m, name)
		out[name] = v
		return out
	}
	for _, row := range []struct {
		name   string
		doc    []byte
		failed []string
		keys   int
	}{
		{"one key", set(jwtKey), nil, 1},
		{"no use, as SPIRE serves it", set(without(jwtKey, "use")), nil, 1},
		{"no kid", set(without(jwtKey, "kid")), []string{"Bundle rule 16"}, 1},
		{"one kid twice", set(jwtKey, jwtKey), []string{"Bundle rule 16"}, 2},
		{"an X.509 authority", set(jwtKey, key(doc, 0)), []string{"Bundle rule 16", "WAPI rule 13"}, 2},
		{"no kty", set(without(jwtKey, "kty")), []string{"Bundle rule 12"}, 0},
		{"bad point", set(with(jwtKey, "x", "AAAA")), []string{"Bundle rule 12"}, 0},
		{"a key not an object", set("x"), []string{"Bundle rule 12"}, 0},
		{"not a JWK Set", []byte(`[]`), []string{"WAPI rule 13"}, 0},
	} {
		t.Run(row.name, func(t *testing.T) {
			r := kit.NewReport(kit.ModeWorkload, row.name)
			keys := r.CheckJWTKeySet("bundle", row.doc)
			assert.Equal(t, row.failed, r.FailedRules(), "%s", text(t, r))
			assert.Len(t, keys, row.keys)
		})
	}
}
