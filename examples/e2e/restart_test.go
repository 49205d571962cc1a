package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// restartEntries is how many entries TestAgentRestartsWithServerAway
// gives the agent: 10,000 in long mode (SPIFFEKIT_LONG=1), where the
// server mints them all first (minutes on a shared machine), else 300.
func restartEntries() int {
	if os.Getenv("SPIFFEKIT_LONG") == "1" {
		return 10_000
	}
	return 300
}

// TestAgentRestartsWithServerAway: an agent holding many entries (100 of
// them for this process, the others for other uids), every SVID minted,
// stops; the server is killed; the agent started again serves the
// workload its 100 SVIDs, the same ones, with no server, from what it
// saved in its data directory. The test logs how long the restarted agent
// took to serve them, from its start, and how long it took to restore
// every saved SVID.
func TestAgentRestartsWithServerAway(t *testing.T) {
	n := restartEntries()
	const mine = 100
	e := progtest.NewEnv(t)
	srv := e.StartServer()
	tok := e.Token()
	args := append(e.AgentArgs(tok),
		"-ratelimit-rate", "0", // the test polls faster than the default limit
		"-x509-svid-cache-max-size", strconv.Itoa(n)) // every SVID minted ahead, and saved
	a := progtest.Start(t, e.AgentBin, args...)
	id := e.AgentID()

	type fileEntry struct {
		SPIFFEID  string   `json:"spiffe_id"`
		ParentID  string   `json:"parent_id"`
		Selectors []string `json:"selectors"`
	}
	var file struct {
		Entries []fileEntry `json:"entries"`
	}
	uid := os.Getuid()
	for k := range n {
		sel := "unix:uid:" + strconv.Itoa(100_000+k) // another uid's
		if k%(n/mine) == 0 && k/(n/mine) < mine {
			sel = "unix:uid:" + strconv.Itoa(uid) // spread through the file
		}
		file.Entries = append(file.Entries, fileEntry{SPIFFEID: fmt.Sprintf("spiffe://example.org/w/%d", k), ParentID: id, Selectors: []string{sel}})
	}
	raw, err := json.Marshal(file)
	require.NoError(t, err)
	path := filepath.Join(e.Dir, "entries.json")
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-data", path)
	progtest.WaitWithin(t, 30*time.Minute, fmt.Sprintf("the agent to mint all %d SVIDs", n), func() bool { return minted(a.Output()) >= n }, a)
	var before map[string]string
	progtest.WaitFor(t, "the workload's SVIDs", func() bool { before = workloadSerials(t, e.APISock); return len(before) == mine }, a)

	srv.Stop(t, syscall.SIGKILL)
	require.Zero(t, a.Stop(t, syscall.SIGTERM), "the agent stops cleanly, saving what it holds")

	start := time.Now()
	b := progtest.Start(t, e.AgentBin, args...)
	var after map[string]string
	progtest.WaitFor(t, "the restarted agent to serve the workload with the server away", func() bool {
		after = workloadSerials(t, e.APISock)
		return len(after) == mine
	}, b)
	served := time.Since(start)
	assert.Equal(t, before, after, "the same SVIDs")
	restored := regexp.MustCompile(`msg="serving the saved workload SVIDs until the agent syncs with a server" entries=(\d+) svids=(\d+) expired=0 stale=0 took=(\S+)`).
		FindStringSubmatch(b.Output())
	require.NotNil(t, restored, "%s", b.Output())
	assert.Equal(t, strconv.Itoa(n), restored[1])
	assert.Equal(t, strconv.Itoa(n), restored[2], "every SVID restored")
	t.Logf("%d entries, server away: the restarted agent served the workload its %d SVIDs %s after it started; it restored %s SVIDs in %s",
		n, mine, served.Round(time.Millisecond), restored[2], restored[3])

	// The workload is served on, through a stream too.
	ctx, cancel := context.WithTimeout(t.Context(), progtest.Timeout)
	defer cancel()
	c, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+e.APISock))
	require.NoError(t, err)
	assert.Len(t, c.SVIDs, mine)
}

var mintedPattern = regexp.MustCompile(`msg="minted X509-SVIDs" count=(\d+)`)

// minted adds up the agent's "minted X509-SVIDs" lines.
func minted(out string) int {
	total := 0
	for _, m := range mintedPattern.FindAllStringSubmatch(out, -1) {
		k, _ := strconv.Atoi(m[1])
		total += k
	}
	return total
}

// workloadSerials fetches this process's X509-SVIDs from the agent at
// sock, and returns the serial of each by SPIFFE ID; nil when the fetch
// fails.
func workloadSerials(t *testing.T, sock string) map[string]string {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr("unix://"+sock))
	if err != nil {
		progtest.Note(t, err.Error())
		return nil
	}
	out := make(map[string]string, len(svids))
	for _, s := range svids {
		out[s.ID.String()] = s.Certificates[0].SerialNumber.Text(16)
	}
	return out
}
