package maintest

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// program is the main the tests run: "exit N" exits with N after writing
// to both outputs; "serve" says it is ready on stderr, then exits with 3
// on SIGTERM; "deaf" says it is ready and ignores SIGTERM; "pwd" prints its working directory; anything else returns
// from main.
func program() {
	args := os.Args[1:]
	switch {
	case len(args) == 2 && args[0] == "exit":
		n, _ := strconv.Atoi(args[1])
		fmt.Println("out")
		fmt.Fprintln(os.Stderr, "err")
		os.Exit(n)
	case len(args) == 1 && args[0] == "serve":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "ready")
		<-c
		os.Exit(3)
	case len(args) == 1 && args[0] == "deaf":
		signal.Ignore(syscall.SIGTERM)
		fmt.Fprintln(os.Stderr, "ready")
		select {}
	case len(args) == 1 && args[0] == "pwd":
		wd, _ := os.Getwd()
		fmt.Print(wd)
	}
}

func TestMain(m *testing.M) { Main(m, program) }

func TestRun(t *testing.T) {
	assert.Equal(t, Result{Code: 4, Stdout: "out\n", Stderr: "err\n"}, Run(t, "", "exit", "4"))
	assert.Equal(t, Result{Code: 0, Stdout: "out\n", Stderr: "err\n"}, Run(t, "", "exit", "0"))
	assert.Equal(t, Result{}, Run(t, "", "return"), "main returning is exit 0")
	dir := t.TempDir()
	assert.Equal(t, dir, Run(t, dir, "pwd").Stdout)
}

func TestSignal(t *testing.T) {
	r := Signal(t, Command("serve"), "ready", syscall.SIGTERM)
	assert.Equal(t, Result{Code: 3, Stderr: "ready\n"}, r)
}

func TestExitCode(t *testing.T) {
	assert.Zero(t, ExitCode(t, nil))
	err := Command("exit", "7").Run()
	assert.Equal(t, 7, ExitCode(t, err))
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestSignalFails(t *testing.T) {
	for _, tt := range []struct {
		name, arg, ready, want string
	}{
		{"the program exits first", "exit", "never printed", `the program exited (exit status 1) before it printed "never printed": err`},
		{"the program is never ready", "serve", "never printed", `the program did not print "never printed" within 200ms: ready`},
		{"the program ignores the signal", "deaf", "ready", "the program did not stop within 200ms of terminated: ready"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				args := []string{tt.arg}
				if tt.arg == "exit" {
					args = append(args, "1")
				}
				signalWithin(r, Command(args...), tt.ready, syscall.SIGTERM, 200*time.Millisecond)
			}()
			<-done
			assert.Contains(t, r.msg, tt.want)
		})
	}
}
