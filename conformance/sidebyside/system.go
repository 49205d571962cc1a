package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// trustDomain is the trust domain of both systems.
const trustDomain = "example.org"

// A system is one implementation under test, driven through its own
// programs and APIs.
type system interface {
	// name is the system's name in the report.
	name() string
	// startServer starts the server with its state in dir and returns once
	// it answers on its administration socket.
	startServer(ctx context.Context, dir string) error
	// token returns a single-use join token whose agent is also known as
	// spiffe://example.org/<alias> (a node alias, as SPIRE's -spiffeID).
	token(ctx context.Context, alias string) (string, error)
	// bundle returns the trust domain's X.509 authorities.
	bundle(ctx context.Context) ([]*x509.Certificate, error)
	// startAgent starts an agent that attests with token and serves the
	// Workload API at workloadAddr, and returns once the socket accepts.
	startAgent(ctx context.Context, token string) error
	// workloadAddr is the agent's Workload API address ("unix://...").
	workloadAddr() string
	// createEntries creates entries through the server's API (in batches)
	// and returns their IDs, in order.
	createEntries(ctx context.Context, entries []entrySpec) ([]string, error)
	// createEntriesCLI creates entries with one run of the server
	// program's batch command (entry create -data FILE).
	createEntriesCLI(ctx context.Context, entries []entrySpec) error
	// signer attests as a node agent with token and returns a client of
	// the node protocol's X509-SVID signing.
	signer(ctx context.Context, token string) (signer, error)
	// serverPID and agentPID are the processes' IDs, 0 when not running.
	serverPID() int
	agentPID() int
	// stop stops the agent and the server.
	stop() error
}

// A signer has X509-SVIDs signed through a system's node protocol.
type signer interface {
	// sign asks for one X509-SVID per CSR, in one request, and returns
	// how many came back signed.
	sign(ctx context.Context, reqs []signRequest) (int, error)
	close()
}

// signRequest is one X509-SVID asked for: the entry and a DER CSR.
type signRequest struct {
	entryID string
	csr     []byte
}

// entrySpec is a registration entry in the form both systems take.
type entrySpec struct {
	spiffeID  string // full SPIFFE ID
	parentID  string // full SPIFFE ID
	selectors []string
}

func newSystem(name string, cfg config) system {
	switch name {
	case "spire":
		return &spire{bin: cfg.spireBin}
	case "spiffekit-skip-hash":
		return &spiffekit{bin: cfg.spiffekitBin, label: name, agentArgs: []string{"-unix-skip-hash"}}
	case "spiffekit-procs1":
		return &spiffekit{bin: cfg.spiffekitBin, label: name, agentEnv: []string{"GOMAXPROCS=1"}}
	case "spiffekit-on-demand":
		return &spiffekit{bin: cfg.spiffekitBin, label: name, agentArgs: []string{"-mint-on-demand"}}
	}
	if v, ok := gogcOf(name); ok {
		return &spiffekit{bin: cfg.spiffekitBin, label: name, agentEnv: []string{"GOGC=" + v}}
	}
	return &spiffekit{bin: cfg.spiffekitBin, label: name}
}

// gogcOf returns N of a system named spiffekit-gogcN, N being a
// non-negative number or "off": the agent run with $GOGC set to it.
func gogcOf(name string) (string, bool) {
	v, ok := strings.CutPrefix(name, "spiffekit-gogc")
	if !ok {
		return "", false
	}
	if v == "off" {
		return v, true
	}
	if n, err := strconv.Atoi(v); err != nil || n < 0 {
		return "", false
	}
	return v, true
}

// proc is a program the harness started.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts bin with args, its output going to logPath.
func startProc(bin string, args []string, logPath string, env ...string) (*proc, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("starting %s: %w", filepath.Base(bin), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int {
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// exited reports whether the process has ended, with how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, and SIGKILL if the process has not ended after 15 s.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop on SIGTERM", filepath.Base(p.cmd.Path))
	}
}

// runTool runs a command line program to its end and returns its output.
func runTool(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return string(out), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// waitUntil calls ok every 50 ms until it returns true, p exits, or
// timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, p *proc, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		if p != nil {
			if exited, err := p.exited(); exited {
				return fmt.Errorf("waiting for %s: the process exited: %v", what, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: timed out after %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// socketAccepts reports whether a unix socket at path accepts connections.
func socketAccepts(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rssKiB returns the resident set size of process pid (VmRSS) in KiB.
func rssKiB(pid int) (int64, error) {
	if pid == 0 {
		return 0, errors.New("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
