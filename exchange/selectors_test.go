package exchange_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
)

func TestSelectors(t *testing.T) {
	const iss = "https://token.actions.githubusercontent.com"
	sels, err := exchange.Selectors(iss, "repo:acme/app:ref:refs/heads/main", map[string]any{
		"iss":                iss,
		"sub":                "repo:acme/app:ref:refs/heads/main",
		"aud":                "x",
		"exp":                1.0,
		"jti":                "j",
		"repository":         "acme/app",
		"ref":                "refs/heads/main",
		"groups":             []any{"a", "b", 3.0, "a"},
		"run_attempt":        1.0,
		"nested":             map[string]any{"k": "v"},
		"weird:name":         "x",
		"":                   "empty name",
		"bad":                "a\x00b",
		"empty":              "",
		"runner_environment": "github-hosted",
	})
	require.NoError(t, err)
	var got []string
	for _, s := range sels {
		got = append(got, s.String())
	}
	assert.Equal(t, []string{
		"oidc:" + iss + ":claim:empty:",
		"oidc:" + iss + ":claim:groups:a",
		"oidc:" + iss + ":claim:groups:b",
		"oidc:" + iss + ":claim:ref:refs/heads/main",
		"oidc:" + iss + ":claim:repository:acme/app",
		"oidc:" + iss + ":claim:runner_environment:github-hosted",
		"oidc:" + iss + ":sub:repo:acme/app:ref:refs/heads/main",
	}, got)

	_, err = exchange.Selectors(iss, "a\x00", nil)
	require.ErrorIs(t, err, attest.ErrInvalidSelector)

	many := map[string]any{}
	for i := range 2 * exchange.MaxSelectors {
		many[fmt.Sprintf("c%04d", i)] = "v"
	}
	sels, err = exchange.Selectors(iss, "s", many)
	require.NoError(t, err)
	assert.Len(t, sels, exchange.MaxSelectors)
	assert.Contains(t, sels, attest.Selector{Type: "oidc", Value: iss + ":sub:s"}, "the subject is always kept")

	sels, err = exchange.Selectors(iss, "s", map[string]any{"long": strings.Repeat("v", attest.MaxValueLength)})
	require.NoError(t, err)
	assert.Len(t, sels, 1, "a claim too long for a selector is left out")
}
