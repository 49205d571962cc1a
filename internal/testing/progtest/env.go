package progtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Env is a server and an agent of trust domain example.org, run from the
// built programs with their files in one short temporary directory.
type Env struct {
	T                   testing.TB
	ServerBin, AgentBin string
	// Dir holds the server's data directory ("server"), the agent's
	// ("agent-data"), the admin and Workload API sockets and the bundle
	// file.
	Dir string
	// AdminSock is the server's admin socket, Bind the address of its node
	// API.
	AdminSock, Bind string
	// APISock is the agent's Workload API socket; BundleFile the trust
	// bundle (PEM) StartServer writes and StartAgent hands the agent.
	APISock, BundleFile string
	// ServerArgs are the arguments StartServer runs spiffe-server with.
	ServerArgs []string
	// ServerWrap and AgentWrap, when not empty, are the command lines that
	// StartServer and StartAgent run their program under, followed by the
	// program and its arguments: "ip", "netns", "exec", NAME runs it in a
	// network namespace.
	ServerWrap, AgentWrap []string
}

// NewEnv builds the programs and returns an Env whose server runs with
// its data directory in Dir, a free node API port and extraServerArgs.
func NewEnv(t testing.TB, extraServerArgs ...string) *Env {
	t.Helper()
	serverBin, agentBin := Build(t)
	dir := ShortTemp(t)
	e := &Env{T: t, ServerBin: serverBin, AgentBin: agentBin, Dir: dir,
		AdminSock: filepath.Join(dir, "admin.sock"), Bind: FreePort(t),
		APISock: filepath.Join(dir, "api.sock"), BundleFile: filepath.Join(dir, "bundle.pem")}
	e.ServerArgs = append([]string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "server"),
		"-bind", e.Bind, "-admin-socket", e.AdminSock}, extraServerArgs...)
	return e
}

// StartServer starts the server, waits until it is ready and writes its
// bundle to BundleFile.
func (e *Env) StartServer() *Proc {
	e.T.Helper()
	os.Remove(e.AdminSock)
	p := start(e.T, e.ServerWrap, e.ServerBin, e.ServerArgs)
	WaitFor(e.T, "the server to be ready", func() bool { return p.Ready() }, p)
	require.NoError(e.T, os.WriteFile(e.BundleFile, []byte(Must(e.T, e.ServerBin, "bundle", "show", "-admin-socket", e.AdminSock)), 0o644))
	return p
}

// Token returns a new join token made through the admin socket.
func (e *Env) Token() string {
	e.T.Helper()
	return strings.TrimSpace(Must(e.T, e.ServerBin, "token", "generate", "-admin-socket", e.AdminSock))
}

// AgentArgs returns the arguments of an agent attesting with token to
// servers (none: the Env's server), serving APISock, with its data in
// Dir/agent-data.
func (e *Env) AgentArgs(token string, servers ...string) []string {
	if len(servers) == 0 {
		servers = []string{e.Bind}
	}
	args := []string{"run", "-trust-domain", "example.org", "-trust-bundle", e.BundleFile,
		"-join-token", token, "-socket", e.APISock, "-data-dir", filepath.Join(e.Dir, "agent-data")}
	for _, s := range servers {
		args = append(args, "-server", s)
	}
	return args
}

// StartAgent starts an agent of [Env.AgentArgs].
func (e *Env) StartAgent(token string, servers ...string) *Proc {
	e.T.Helper()
	return start(e.T, e.AgentWrap, e.AgentBin, e.AgentArgs(token, servers...))
}

var agentIDPattern = regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/join_token/[0-9a-f]+`)

// AgentID waits until an agent attested to the server and returns its
// SPIFFE ID.
func (e *Env) AgentID() string {
	e.T.Helper()
	var id string
	WaitFor(e.T, "the agent to attest", func() bool {
		out, _, code := Run(e.T, nil, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock)
		id = agentIDPattern.FindString(out)
		return code == 0 && id != ""
	})
	return id
}

// Entry creates the entry of id under parent for selector, with the
// flags of "entry create" in extra (such as "-x509-ttl", "1m").
func (e *Env) Entry(parent, id string, selector string, extra ...string) {
	e.T.Helper()
	Must(e.T, e.ServerBin, append([]string{"entry", "create", "-admin-socket", e.AdminSock, "-parent-id", parent,
		"-spiffe-id", id, "-selector", selector}, extra...)...)
}

// Fetch runs "spiffe-agent api fetch x509" against the agent once, and
// returns its output and exit code.
func (e *Env) Fetch() (string, int) {
	e.T.Helper()
	out, _, code := Run(e.T, nil, e.AgentBin, "api", "fetch", "x509", "-socket", e.APISock)
	return out, code
}

// loadRate bounds the fetches of Load per second: below the agent's
// default Workload API rate limit (endpoint.DefaultRate, 20 calls a
// second for each uid), which would otherwise refuse some of them on a
// fast machine.
const loadRate = 15

// Load fetches SVIDs from the agent in a loop, each with "spiffe-agent
// api fetch x509", at most loadRate a second, until stop is called; count
// says how many fetches have run so far, stop how many ran and how many
// failed. The output of each failed fetch is logged.
func (e *Env) Load() (count func() int64, stop func() (total, failed int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	var total, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / loadRate)
		defer tick.Stop()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			cmd := exec.CommandContext(ctx, e.AgentBin, "api", "fetch", "x509", "-socket", e.APISock)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				return
			}
			total.Add(1)
			if err != nil {
				failed.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("fetch %d (%v, after %s): %s", total.Load(), err, time.Since(start).Round(time.Millisecond), out))
				mu.Unlock()
			}
		}
	}()
	return total.Load, func() (int64, int64) {
		cancel()
		<-done
		for _, f := range failures {
			e.T.Log(f)
		}
		return total.Load(), failed.Load()
	}
}

// FederationConfig writes, in dir, the configuration file of a server
// federating with trust domain td, whose https_spiffe bundle endpoint
// listens on fedBind and whose bundle (a SPIFFE bundle document) is in
// bundleFile, and returns its path (for spiffe-server run -config).
func FederationConfig(t testing.TB, dir, td, fedBind, bundleFile string) string {
	t.Helper()
	cfg := map[string]any{"federates_with": []map[string]string{{
		"trust_domain":       td,
		"url":                "https://" + fedBind + "/",
		"profile":            "https_spiffe",
		"endpoint_spiffe_id": "spiffe://" + td + "/spiffekit/server",
		"bundle_file":        bundleFile,
	}}}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(dir, "federates-with-"+td+".json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// WriteConfig writes config as the JSON file dir/server.json (mode 0600)
// and returns its path, for NewEnv's "-config".
func WriteConfig(t testing.TB, dir string, config any) string {
	t.Helper()
	b, err := json.Marshal(config)
	require.NoError(t, err)
	path := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// WaitAttested waits until the agent of SPIFFE ID id has attested to the
// server (failing early if one of procs exits), and returns what "agent
// list -spiffe-id" says of it: its selectors among the rest.
func (e *Env) WaitAttested(id string, procs ...*Proc) string {
	e.T.Helper()
	WaitFor(e.T, "the agent to attest", func() bool {
		out, _, code := Run(e.T, nil, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock)
		return code == 0 && strings.Contains(out, id)
	}, procs...)
	return Must(e.T, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock, "-spiffe-id", id)
}

// WaitSVID waits until the Workload API at socket serves an X509-SVID of
// SPIFFE ID id to this process (failing early if one of procs exits).
func (e *Env) WaitSVID(socket, id string, procs ...*Proc) {
	e.T.Helper()
	WaitFor(e.T, "the SVID", func() bool {
		out, _, code := Run(e.T, nil, e.AgentBin, "api", "fetch", "x509", "-socket", socket)
		return code == 0 && strings.Contains(out, id)
	}, procs...)
}
