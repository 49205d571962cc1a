// Package interop runs go-spiffe v2.9.0's Workload API client, and
// spiffekit's, against spiffekit's endpoint.Server over real unix sockets,
// and checks that a program moved from one library to the other by changing
// its import prefix behaves the same.
package interop

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	gospiffe "github.com/spiffekit/spiffekit/conformance/interop/scenario/gospiffe"
	spiffekit "github.com/spiffekit/spiffekit/conformance/interop/scenario/spiffekit"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

const timeout = 15 * time.Second

// TestScenarioFilesDifferOnlyInImportPrefix keeps the two copies of the
// scenario honest: the spiffekit one is the go-spiffe one with the import
// prefix replaced, byte for byte.
func TestScenarioFilesDifferOnlyInImportPrefix(t *testing.T) {
	theirs, err := os.ReadFile("scenario/gospiffe/scenario.go")
	require.NoError(t, err)
	ours, err := os.ReadFile("scenario/spiffekit/scenario.go")
	require.NoError(t, err)
	require.Contains(t, string(theirs), `"github.com/spiffe/go-spiffe/v2/workloadapi"`)
	moved := strings.ReplaceAll(string(theirs), "github.com/spiffe/go-spiffe/v2", "github.com/spiffekit/spiffekit")
	assert.Equal(t, moved, string(ours))
}

// TestSameProgramSameResults runs the scenario once per library against
// the same kind of server and compares the transcripts line by line.
func TestSameProgramSameResults(t *testing.T) {
	run := func(t *testing.T, program func(context.Context, string, func() error) ([]string, error)) []string {
		f := workloadtest.New(t)
		require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, "internal"), f.SVID(t, workloadtest.DBID, "external"))))
		srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
		rotate := func() error {
			return f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, "internal"), f.SVID(t, workloadtest.DBID, "external")))
		}
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		out, err := program(ctx, srv.Addr, rotate)
		require.NoError(t, err, "transcript so far:\n%s", strings.Join(out, "\n"))
		return out
	}
	var theirs, ours []string
	t.Run("go-spiffe", func(t *testing.T) { theirs = run(t, gospiffe.Run) })
	t.Run("spiffekit", func(t *testing.T) { ours = run(t, spiffekit.Run) })
	require.NotEmpty(t, theirs)
	assert.Equal(t, theirs, ours)

	want := []string{
		`FetchX509SVID: spiffe://example.org/web hint="internal" chain=2`,
		`FetchX509SVIDs: spiffe://example.org/web hint="internal"`,
		`FetchX509SVIDs: spiffe://example.org/db hint="external"`,
		`FetchX509Bundles: example.org authorities=1`,
		`FetchX509Bundles: federated.test authorities=1`,
		`FetchX509Context: default=spiffe://example.org/web svids=2 bundles=2`,
		`x509svid.Verify(db, own bundle): err=<nil>`,
		`FetchJWTSVID: spiffe://example.org/db aud=db,cache hint="external"`,
		`FetchJWTSVIDs: spiffe://example.org/web hint="internal"`,
		`FetchJWTSVIDs: spiffe://example.org/db hint="external"`,
		`FetchJWTBundles: example.org:1 federated.test:1`,
		`jwtsvid.ParseAndValidate: spiffe://example.org/web`,
		`ValidateJWTSVID: spiffe://example.org/web`,
		`ValidateJWTSVID(wrong audience): code=InvalidArgument`,
		`FetchWITSVID(no WIT profile): code=Unimplemented`,
		`FetchWITBundles(no WIT profile): code=Unimplemented`,
		`X509Source: spiffe://example.org/web`,
		`X509Source after rotation: spiffe://example.org/web new leaf`,
		`X509Source closed: error=true`,
	}
	assert.Equal(t, want, theirs, "go-spiffe's transcript")
}
