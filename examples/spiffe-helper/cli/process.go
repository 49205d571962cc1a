package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spiffekit/spiffekit/internal/atomicfile"
)

// maxPIDFileSize bounds a pid file.
const maxPIDFileSize = 64

// process is the program of cmd: started at the first renewal, signalled
// at the next ones, started again at a renewal after it exited.
type process struct {
	cfg            *Config
	log            *slog.Logger
	stdout, stderr io.Writer

	mu      sync.Mutex
	cmd     *exec.Cmd     // nil when not running
	exited  chan struct{} // closed when cmd was reaped
	stopped bool          // stop was called: start nothing more
	wg      sync.WaitGroup
}

// renew starts the process, or sends it renew_signal if it runs.
func (p *process) renew() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.cmd != nil {
		if p.cfg.RenewSignal == "" {
			return
		}
		sig, _ := parseSignal(p.cfg.RenewSignal) // checked by ParseConfig
		if err := p.cmd.Process.Signal(sig); err != nil {
			p.log.Error("cannot signal the process of cmd", "pid", p.cmd.Process.Pid, "signal", p.cfg.RenewSignal, "err", err)
			return
		}
		p.log.Info("process of cmd signalled", "pid", p.cmd.Process.Pid, "signal", p.cfg.RenewSignal)
		return
	}
	args, _ := splitArgs(p.cfg.CmdArgs) // checked by ParseConfig
	cmd := exec.Command(p.cfg.Cmd, args...)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		p.log.Error("cannot start cmd", "cmd", p.cfg.Cmd, "err", err)
		return
	}
	p.log.Info("process of cmd started", "cmd", p.cfg.Cmd, "pid", cmd.Process.Pid)
	p.cmd, p.exited = cmd, make(chan struct{})
	exited := p.exited
	p.wg.Go(func() {
		err := cmd.Wait()
		p.log.Info("process of cmd exited", "pid", cmd.Process.Pid, "status", exitStatus(cmd, err))
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		close(exited)
	})
}

// exitStatus describes how a process ended.
func exitStatus(cmd *exec.Cmd, err error) string {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err.Error()
	}
	return cmd.ProcessState.String()
}

// stop ends the process, if it runs: SIGTERM, then SIGKILL after timeout.
// Nothing is started after stop.
func (p *process) stop(timeout time.Duration) {
	p.mu.Lock()
	p.stopped = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(timeout):
			p.log.Warn("process of cmd still running after SIGTERM; killing it", "pid", cmd.Process.Pid, "after", timeout)
			cmd.Process.Kill()
		}
	}
	p.wg.Wait()
}

// signalPIDFile sends the signal named sig to the process whose pid the
// file at path holds.
func signalPIDFile(path, sig string) error {
	data, err := atomicfile.Read(path, maxPIDFileSize)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("%s: %q is not a process ID", path, bytes.TrimSpace(data))
	}
	s, err := parseSignal(sig)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, s); err != nil {
		return fmt.Errorf("sending %s to pid %d: %w", sig, pid, err)
	}
	return nil
}
