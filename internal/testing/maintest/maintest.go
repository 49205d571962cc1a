// Package maintest lets a program's tests run its main in a process of its
// own, the test binary started again, to check what a user sees: exit
// codes, standard output and error, and the stop on a signal. Test only.
//
//	func TestMain(m *testing.M) { maintest.Main(m, main) }
//
//	func TestUsage(t *testing.T) {
//		r := maintest.Run(t, "", "-h")
//		assert.Equal(t, 0, r.Code)
//	}
package maintest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// envMain, set to "1", makes the test binary run the program's main.
const envMain = "SPIFFEKIT_MAINTEST_MAIN"

// Timeout bounds each wait of [Signal]: for the program to be ready, and
// for it to stop.
const Timeout = 20 * time.Second

// Main is the test binary's TestMain: it runs main when [Command] started
// this process, and the tests otherwise.
func Main(m *testing.M, main func()) {
	if os.Getenv(envMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Command returns the command that runs the program's main with args.
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	return cmd
}

// Result is how a run of the program ended.
type Result struct {
	Code           int // exit code
	Stdout, Stderr string
}

// Run runs the program's main with args in the directory dir ("": the
// test's working directory), and returns how it ended.
func Run(t testing.TB, dir string, args ...string) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := Command(args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := ExitCode(t, cmd.Run())
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// ExitCode returns the exit code that err, from running a command, stands
// for; the test fails if the command did not run to an exit.
func ExitCode(t testing.TB, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	return ee.ExitCode()
}

// Signal starts cmd (from [Command]), waits until its standard error
// holds ready, which the program prints once its signal handler is
// installed, sends it sig, and returns how it ended. The test fails if
// the program exits before it is ready, or if either wait outlasts
// [Timeout].
func Signal(t testing.TB, cmd *exec.Cmd, ready string, sig os.Signal) Result {
	t.Helper()
	return signalWithin(t, cmd, ready, sig, Timeout)
}

func signalWithin(t testing.TB, cmd *exec.Cmd, ready string, sig os.Signal, timeout time.Duration) Result {
	t.Helper()
	var stdout, stderr logtest.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(timeout)
	for !stderr.Contains(ready) {
		select {
		case err := <-done:
			t.Fatalf("the program exited (%v) before it printed %q: %s", err, ready, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("the program did not print %q within %v: %s", ready, timeout, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.NoError(t, cmd.Process.Signal(sig))
	select {
	case err := <-done:
		return Result{Code: ExitCode(t, err), Stdout: stdout.String(), Stderr: stderr.String()}
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the program did not stop within %v of %v: %s", timeout, sig, stderr.String())
		return Result{}
	}
}
