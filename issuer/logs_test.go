package issuer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var mintedSummary = regexp.MustCompile(`level=INFO msg="minted X509-SVIDs" count=(\d+) failed=0`)

// Property: minting many SVIDs logs one Info line per batch, not one per
// SVID, whose counts add up to the SVIDs minted; the per-SVID lines are at
// Debug.
func TestMintingLogsOneLinePerBatch(t *testing.T) {
	const n = 200
	store := memstore.New(memstore.Config{})
	for k := range n {
		_, err := store.Create(t.Context(), registry.Entry{
			SPIFFEID: spiffeid.RequireFromPath(td, fmt.Sprintf("/w%d", k)), ParentID: parentID,
			Selectors: []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", 10000+k)}},
		})
		require.NoError(t, err)
	}
	info, debug := &logtest.Buffer{}, &logtest.Buffer{}
	logger := slog.New(fanout{
		slog.NewTextHandler(info, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug}),
	})
	newEnv(t, issuer.Config{Registry: store, PreMint: true, Logger: logger})
	total := func() int {
		sum := 0
		for _, m := range mintedSummary.FindAllStringSubmatch(info.String(), -1) {
			c, _ := strconv.Atoi(m[1])
			sum += c
		}
		return sum
	}
	require.Eventually(t, func() bool { return total() == n }, 30*time.Second, 10*time.Millisecond, info.String())
	lines := len(mintedSummary.FindAllString(info.String(), -1))
	assert.Less(t, lines, n/10, "one line per batch: %d lines for %d SVIDs", lines, n)
	assert.NotContains(t, info.String(), `msg="minted X509-SVID" `, "no line per SVID at Info")
	assert.Equal(t, n, strings.Count(debug.String(), `level=DEBUG msg="minted X509-SVID" `), "one line per SVID at Debug")
}

// fanout hands every record to each of its handlers that takes its level.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f fanout) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}

// Property: at Debug, the issuer logs the selectors it discovered for a
// caller, with its pid and uid: what an operator needs to write the entry
// the caller lacks. At Info, it logs nothing of a caller.
func TestDebugShowsACallersSelectors(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		logs := &logtest.Buffer{}
		e := newEnv(t, issuer.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))})
		e.serve(t)
		_, err := e.client(t).FetchX509SVID(t.Context())
		require.Error(t, err, "no entry: no identity")
		want := regexp.MustCompile(`level=DEBUG msg="caller attested" pid=\d+ uid=` + strconv.Itoa(os.Getuid()) +
			` gid=\d+ selectors="\[.*` + regexp.QuoteMeta(ourUID.String()) + `.*\]"`)
		if level == slog.LevelDebug {
			assert.Regexp(t, want, logs.String())
		} else {
			assert.NotContains(t, logs.String(), "caller attested")
		}
	}
}

var failedSummary = regexp.MustCompile(`level=ERROR msg="minting X509-SVIDs failed" count=(\d+) retry_in=\S+ first_entry=\S+ first_spiffe_id=spiffe://example.org/w\d+ err=`)

// Property: a batch of mints that fails (every server away) logs one line
// for the batch, with the count, the soonest retry and the first failure,
// not one line per entry, whose lines are at Debug.
func TestMintFailuresLogOneLinePerBatch(t *testing.T) {
	const n = 200
	store := memstore.New(memstore.Config{})
	for k := range n {
		_, err := store.Create(t.Context(), registry.Entry{
			SPIFFEID: spiffeid.RequireFromPath(td, fmt.Sprintf("/w%d", k)), ParentID: parentID,
			Selectors: []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", 10000+k)}},
		})
		require.NoError(t, err)
	}
	info, debug := &logtest.Buffer{}, &logtest.Buffer{}
	logger := slog.New(fanout{
		slog.NewTextHandler(info, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug}),
	})
	newEnv(t, issuer.Config{Registry: store, PreMint: true, Logger: logger, Signer: downSigner{}})
	total := func() int {
		sum := 0
		for _, m := range failedSummary.FindAllStringSubmatch(info.String(), -1) {
			c, _ := strconv.Atoi(m[1])
			sum += c
		}
		return sum
	}
	require.Eventually(t, func() bool { return total() >= n }, 30*time.Second, 10*time.Millisecond, info.String())
	lines := len(failedSummary.FindAllString(info.String(), -1))
	assert.Less(t, lines, n/10, "one line per batch: %d lines for %d failures", lines, n)
	assert.NotContains(t, info.String(), `msg="minting an X509-SVID failed"`, "no line per entry above Debug")
	assert.Contains(t, info.String(), "the server is away")
	assert.GreaterOrEqual(t, strings.Count(debug.String(), `level=DEBUG msg="minting an X509-SVID failed"`), n, "one line per entry at Debug")
}
