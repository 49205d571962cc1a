package kit_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// text returns the report as text, for failure messages.
func text(t testing.TB, r *kit.Report) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, r.WriteText(&b))
	return b.String()
}

// deviations returns the IDs of the rules with an allowed deviation and no
// failure, sorted as FailedRules sorts.
func deviations(r *kit.Report) []string {
	var out []string
	for id, v := range r.Verdicts() {
		if v == kit.DeviationAllowed {
			out = append(out, id)
		}
	}
	order := map[string]int{}
	for i, rule := range kit.Rules() {
		order[rule.ID] = i
	}
	sort.Slice(out, func(i, j int) bool { return order[out[i]] < order[out[j]] })
	return out
}

// requireAllMustPass fails the test on a MUST failure, and logs the
// report's counts.
func requireAllMustPass(t *testing.T, r *kit.Report) {
	t.Helper()
	c := r.Counts()
	t.Logf("%d pass, %d fail, %d not applicable, %d deviation allowed", c[kit.Pass], c[kit.Fail], c[kit.NotApplicable], c[kit.DeviationAllowed])
	assert.False(t, r.Failed(), "%s", text(t, r))
	assert.Empty(t, r.FailedRules())
}
