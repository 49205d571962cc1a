//go:build !windows

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// envMain makes the test binary the program, for the processes the tests
// start (and those the program starts again under another uid).
const envMain = "SPIFFE_CONFORMANCE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const unregisteredUID = 4646

// TestWorkloadAgent runs the program against spiffekit's node agent, as
// root, checking the refusal of an unregistered caller by running itself
// again under another uid: every MUST rule passes, and the unregistered
// caller is refused with PermissionDenied.
func TestWorkloadAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		component.Unavailable(t, "uids", "runs the kit under another uid, which needs root")
	}
	// The program and the agent's socket where the other uid reaches them.
	dir, err := os.MkdirTemp("", "kit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := calltest.Binary(t, dir)
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "api.sock"), 0o777)
	require.NoError(t, err)

	s := nodetest.StartServer(t, server.Config{})
	cfg := s.AgentConfig(t)
	cfg.Listener = lis
	a := nodetest.StartAgent(t, cfg)
	a.WaitSVID(t, s.Register(t, a.ID(), "/web").SPIFFEID)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "workload", "-addr", a.Addr, "-unregistered-uid", strconv.Itoa(unregisteredUID), "-format", "json", "-timeout", "20s")
	cmd.Env = append(os.Environ(), envMain+"=1")
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "%s\n%s", out, stderr)
	var r kit.Report
	require.NoError(t, json.Unmarshal(out, &r))
	c := r.Counts()
	t.Logf("against the agent: %d pass, %d fail, %d not applicable, %d deviation allowed", c[kit.Pass], c[kit.Fail], c[kit.NotApplicable], c[kit.DeviationAllowed])
	assert.Empty(t, r.FailedRules())
	denied := r.ByRule("WAPI rule 10b")
	require.Len(t, denied, 3, "FetchX509SVID, FetchJWTSVID and FetchWITSVID, and no 'not told how'")
	for _, res := range denied[:2] {
		assert.Equal(t, kit.Pass, res.Verdict, res.Evidence)
		assert.Contains(t, res.Evidence, "PermissionDenied")
	}
	assert.Equal(t, kit.NotApplicable, denied[2].Verdict, "the agent offers no WIT profile: %s", denied[2].Evidence)
	for _, res := range denied {
		assert.Contains(t, res.Subject, "(uid "+strconv.Itoa(unregisteredUID)+")")
	}
}

// TestWorkloadFlags runs the workload mode in process: against a second
// socket of an agent (which serves this uid), the refusal of a caller
// that is not entitled fails to show, a deviation the standard allows;
// and the mode's usage errors.
func TestWorkloadFlags(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	a.WaitSVID(t, s.Register(t, a.ID(), "/web").SPIFFEID)

	code, out, errOut := runProgram(t, "", "workload", "-addr", a.Addr, "-unregistered-addr", a.Addr, "-timeout", "20s")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, `DEVIATION ALLOWED +WAPI rule 10b +SHOULD +unregistered caller FetchX509SVID +answered`, out)
	assert.Contains(t, out, "no MUST rule failed")

	for name, args := range map[string][]string{
		"no -addr":       {"workload"},
		"bad address":    {"workload", "-addr", "tcp://localhost:1"},
		"two ways":       {"workload", "-addr", a.Addr, "-unregistered-addr", a.Addr, "-unregistered-uid", "1"},
		"nothing there":  {"workload", "-addr", "unix://" + filepath.Join(t.TempDir(), "none.sock"), "-timeout", "1s"},
		"only, bad addr": {"workload", "-unregistered-only", "-addr", "x"},
	} {
		code, _, errOut := runProgram(t, "", append(args, "-format", "json")...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
	}
}

// TestBundleEndpoint runs the bundle-endpoint mode against the bundle
// endpoint of spiffekit's issuing server (https_spiffe), and its usage
// errors.
func TestBundleEndpoint(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{FederationBind: "127.0.0.1:0"})
	url := "https://" + s.FederationAddr().String() + "/"
	bundle := writeFile(t, "bundle.pem", pemCerts(s.Bundle().X509Authorities()...))
	code, out, errOut := runProgram(t, "", "bundle-endpoint", "-url", url, "-trust-domain", "example.org", "-profile", "https_spiffe",
		"-endpoint-id", "spiffe://example.org/spiffekit/server", "-endpoint-bundle", bundle, "-timeout", "20s")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, `PASS +Fed rule 16 +MUST +server certificate`, out)

	// https_web with roots that do not hold the server's: Fed rule 12.
	code, out, _ = runProgram(t, "", "bundle-endpoint", "-url", url, "-trust-domain", "example.org", "-profile", "https_web", "-roots", bundle)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "MUST rules failed: Fed rule 12\n")

	for name, args := range map[string][]string{
		"no -url":           {"bundle-endpoint"},
		"missing roots":     {"bundle-endpoint", "-url", url, "-roots", filepath.Join(t.TempDir(), "none")},
		"roots not PEM":     {"bundle-endpoint", "-url", url, "-roots", writeFile(t, "x", []byte("x"))},
		"missing bundle":    {"bundle-endpoint", "-url", url, "-endpoint-bundle", filepath.Join(t.TempDir(), "none")},
		"no profile":        {"bundle-endpoint", "-url", url, "-trust-domain", "example.org"},
		"nothing listening": {"bundle-endpoint", "-url", "https://127.0.0.1:1/", "-trust-domain", "example.org", "-profile", "https_web", "-timeout", "1s"},
	} {
		code, _, errOut := runProgram(t, "", args...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
	}
}

// TestSDS runs the sds mode against spiffekit's node agent serving SDS.
func TestSDS(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	cfg := s.AgentConfig(t)
	cfg.SDS = &sds.Config{}
	a := nodetest.StartAgent(t, cfg)
	a.WaitSVID(t, s.Register(t, a.ID(), "/web").SPIFFEID)
	code, out, errOut := runProgram(t, "", "sds", "-addr", a.Addr, "-timeout", "20s")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, `PASS +SDS rule 5 +MUST +ALL`, out)
	code, _, _ = runProgram(t, "", "sds")
	assert.Equal(t, exitCantRun, code)
}
