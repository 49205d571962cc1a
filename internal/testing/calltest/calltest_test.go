package calltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

// dial gives calls that need no server: a fetch run's odd calls are
// refused; the flood's calls all succeed. Address "fail" cannot be dialled.
func dial(_ context.Context, addr string) (Calls, func(), error) {
	if addr == "fail" {
		return Calls{}, nil, errors.New("cannot dial")
	}
	return Calls{
		Flood:      func(context.Context, int, int) error { return nil },
		ReadyAfter: 10,
		Fetch: func(_ context.Context, i int) error {
			if i%2 == 1 {
				return status.Error(codes.ResourceExhausted, "slow down")
			}
			return nil
		},
	}, func() {}, nil
}

func TestMain(m *testing.M) {
	Main(dial)
	os.Exit(m.Run())
}

func TestCallerProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		component.Unavailable(t, "uids", "starts callers under another uid, which needs root")
	}
	dir, err := os.MkdirTemp("", "calltest") // t.TempDir's parent is 0700
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := Binary(t, dir)
	fi, err := os.Stat(bin)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

	got := Start(t, bin, 4242, "fetch", "x", 5).Wait(t)
	assert.Equal(t, map[string]int{"OK": 3, "ResourceExhausted": 2}, got.Codes)
	assert.Len(t, got.Latencies, 5)

	flood := Start(t, bin, 4242, "flood", "x", 2)
	flood.WaitReady(t)
	flood.Stop()
	got = flood.Wait(t)
	assert.GreaterOrEqual(t, got.Codes["OK"], 10)
	assert.Len(t, got.Codes, 1)
}

func TestRunRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		name string
		role string
		args []string
		want int
	}{
		{"one argument", "fetch", []string{"x"}, 2},
		{"N not a number", "fetch", []string{"x", "many"}, 2},
		{"dial fails", "fetch", []string{"fail", "1"}, 1},
		{"unknown role", "sing", []string{"x", "1"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			assert.Equal(t, tt.want, run(tt.role, tt.args, dial, strings.NewReader(""), &out))
			assert.Empty(t, out.String(), "no report")
		})
	}
}

func TestRunInProcess(t *testing.T) {
	var out bytes.Buffer
	require.Zero(t, run("fetch", []string{"x", "3"}, dial, strings.NewReader(""), &out))
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	assert.Equal(t, map[string]int{"OK": 2, "ResourceExhausted": 1}, rep.Codes)

	// The flood runs until its stdin ends, which the test does once the
	// flood says it is ready.
	stdin, stop := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run("flood", []string{"x", "3"}, dial, stdin, outW)
		outW.Close()
	}()
	r := bufio.NewReader(outR)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "ready\n", line)
	stop.Close()
	require.NoError(t, json.NewDecoder(r).Decode(&rep))
	assert.Zero(t, <-done)
	assert.GreaterOrEqual(t, rep.Codes["OK"], 10)
	assert.Empty(t, rep.Latencies)
}

func TestQuantile(t *testing.T) {
	assert.Zero(t, Quantile(nil, 0.5))
	d := []time.Duration{5, 1, 4, 2, 3}
	assert.Equal(t, time.Duration(3), Quantile(d, 0.5))
	assert.Equal(t, time.Duration(5), Quantile(d, 0.99))
	assert.Equal(t, time.Duration(5), Quantile(d, 1))
	assert.Equal(t, time.Duration(1), Quantile(d, 0.01))
}
