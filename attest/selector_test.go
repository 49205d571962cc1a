package attest_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func TestParseSelector(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want attest.Selector
		err  string
	}{
		{name: "simple", in: "unix:uid:1000", want: attest.Selector{Type: "unix", Value: "uid:1000"}},
		{name: "value with spaces", in: "unix:path:/opt/my app", want: attest.Selector{Type: "unix", Value: "path:/opt/my app"}},
		{name: "type chars", in: "k8s_psat.v-1:x", want: attest.Selector{Type: "k8s_psat.v-1", Value: "x"}},
		{name: "no colon", in: "unix", err: "has no ':'"},
		{name: "empty", in: "", err: "has no ':'"},
		{name: "empty type", in: ":uid:1", err: "type is empty"},
		{name: "empty value", in: "unix:", err: "empty value"},
		{name: "space in type", in: "un ix:uid:1", err: "contains ' '"},
		{name: "type too long", in: strings.Repeat("t", attest.MaxTypeLength+1) + ":v", err: "type is longer"},
		{name: "type at limit", in: strings.Repeat("t", attest.MaxTypeLength) + ":v",
			want: attest.Selector{Type: strings.Repeat("t", attest.MaxTypeLength), Value: "v"}},
		{name: "value too long", in: "t:" + strings.Repeat("v", attest.MaxValueLength+1), err: "value is longer"},
		{name: "value at limit", in: "t:" + strings.Repeat("v", attest.MaxValueLength),
			want: attest.Selector{Type: "t", Value: strings.Repeat("v", attest.MaxValueLength)}},
		{name: "NUL in value", in: "t:a\x00b", err: "control character"},
		{name: "tab in value", in: "t:a\tb", err: "control character"},
		{name: "DEL in value", in: "t:a\x7fb", err: "control character"},
		{name: "value not UTF-8", in: "unix:path:/bin/\xff", err: "not valid UTF-8"},
		{name: "non-ASCII value", in: "unix:user:jürgen", want: attest.Selector{Type: "unix", Value: "user:jürgen"}},
		{name: "NUL in type", in: "t\x00:v", err: "contains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := attest.ParseSelector(tt.in)
			if tt.err != "" {
				require.ErrorIs(t, err, attest.ErrInvalidSelector)
				assert.Contains(t, err.Error(), tt.err)
				assert.True(t, strings.HasPrefix(err.Error(), "attest: "))
				assert.True(t, got.IsZero())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.in, got.String())
			assert.False(t, got.IsZero())
		})
	}
}

func TestParseSelectorLongInputKeepsErrorShort(t *testing.T) {
	_, err := attest.ParseSelector(strings.Repeat("x", 100000))
	require.ErrorIs(t, err, attest.ErrInvalidSelector)
	assert.Less(t, len(err.Error()), 200)
}

func TestSelectorIsComparable(t *testing.T) {
	m := map[attest.Selector]int{{Type: "unix", Value: "uid:0"}: 1}
	assert.Equal(t, 1, m[attest.Selector{Type: "unix", Value: "uid:0"}])
	assert.True(t, attest.Selector{}.IsZero())
	require.ErrorIs(t, attest.Selector{}.Validate(), attest.ErrInvalidSelector)
}

func TestSelectorCompare(t *testing.T) {
	a := attest.Selector{Type: "a", Value: "z"}
	assert.Equal(t, -1, a.Compare(attest.Selector{Type: "b", Value: "a"}))
	assert.Equal(t, 1, a.Compare(attest.Selector{Type: "a", Value: "a"}))
	assert.Equal(t, 0, a.Compare(a))
	// Bytes, not runes or collation: upper case sorts before lower case.
	assert.Equal(t, -1, attest.Selector{Type: "Z", Value: "v"}.Compare(attest.Selector{Type: "a", Value: "v"}))
}

// TestSPIRESelectorTypes checks that every selector type SPIRE's attestors
// produce is a valid type.
func TestSPIRESelectorTypes(t *testing.T) {
	for _, typ := range []string{"unix", "k8s", "k8s_sat", "k8s_psat", "docker", "systemd", "windows", "aws_iid",
		"gcp_iit", "azure_msi", "x509pop", "sshpop", "join_token", "tpm_devid", "spiffe_id", "http_challenge"} {
		sel := attest.Selector{Type: typ, Value: "x:y"}
		require.NoError(t, sel.Validate(), typ)
		got, err := attest.ParseSelector(sel.String())
		require.NoError(t, err, typ)
		assert.Equal(t, sel, got)
	}
}

func TestSelectorKind(t *testing.T) {
	for _, tt := range []struct{ value, kind string }{
		{"sha256:abc", "sha256"},
		{"uid:1000", "uid"},
		{"label:app:web", "label"},
		{"ns", "ns"},
		{":x", ""},
		{"", ""},
	} {
		assert.Equal(t, tt.kind, attest.Selector{Type: "t", Value: tt.value}.Kind(), tt.value)
	}
}
