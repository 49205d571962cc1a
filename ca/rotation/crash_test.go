package rotation

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/stretchr/testify/require"
)

const (
	crashDirEnv   = "SPIFFEKIT_ROTATION_CRASH_DIR"
	crashStartEnv = "SPIFFEKIT_ROTATION_CRASH_START"
	recordEnd     = "#END\n"
	crashStep     = 10 * time.Minute // simulated time per loop of the child
	crashSteps    = 11               // loops that advance the clock, within the 2h between runs
)

func crashConfig(t testing.TB, dir string, now func() time.Time) Config {
	cfg := newPersistent(t, dir).config(now)
	cfg.CATTL = 4 * time.Hour
	cfg.JWTKeyTTL = 4 * time.Hour
	cfg.X509SVIDTTL = 30 * time.Minute
	return cfg
}

// TestCrashHelper is the child process of TestCrashSafety: it rotates, forces
// rotations and mints SVIDs in a loop until it is killed. Each SVID is
// appended to svids.log and synced before it counts as handed out.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashSafety only")
	}
	startUnix, err := strconv.ParseInt(os.Getenv(crashStartEnv), 10, 64)
	require.NoError(t, err)
	clk := newClock(time.Unix(startUnix, 0).UTC())
	m, err := New(t.Context(), crashConfig(t, dir, clk.Now))
	require.NoError(t, err)
	log, err := os.OpenFile(filepath.Join(dir, "svids.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	fmt.Println("ready")
	ctx := t.Context()
	for i := 0; ; i++ {
		if i > 0 && i <= crashSteps {
			clk.Add(crashStep)
		}
		require.NoError(t, m.Rotate(ctx))
		switch {
		case i%7 == 3:
			_, err = m.PrepareX509CA(ctx)
		case i%11 == 5:
			err = m.ActivateX509CA(ctx)
		case i%13 == 2:
			_, err = m.PrepareJWTKey(ctx)
		case i%17 == 9:
			err = m.ActivateJWTKey(ctx)
		}
		if err != nil && !errors.Is(err, ErrNoPrepared) && !errors.Is(err, ErrTooManyAuthorities) {
			require.NoError(t, err)
		}
		chain := mintSVID(t, m, 0)
		record := append(pemutil.EncodeCertificates(chain), recordEnd...)
		_, err = log.Write(record)
		require.NoError(t, err)
		require.NoError(t, log.Sync())
		fmt.Println("issued", i) // reported only once durable
	}
}

// TestCrashSafety kills a child process that rotates and signs at random
// moments, then checks that the journal it leaves loads and that every SVID it
// handed out still verifies against the restored bundle until it expires.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	base := t0
	checked := 0
	for iter := range 20 {
		start := base.Add(time.Duration(iter) * 2 * time.Hour)
		cmd := exec.Command(exe, "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashStartEnv, start.Unix()))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(stdout)
		ready := lines.Scan() && lines.Text() == "ready"
		if ready {
			// Kill at a random moment of the rotate/sign loop.
			time.Sleep(time.Duration(5+rand.IntN(46)) * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for lines.Scan() {
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		status := exit.Sys().(syscall.WaitStatus)
		require.True(t, status.Signaled(), "child failed on its own (iteration %d): %s", iter, stderr.String())
		require.True(t, ready, "child did not start: %s", stderr.String())

		// Check at the latest issuance time, when the most SVIDs are valid.
		chains := readRecords(t, filepath.Join(dir, "svids.log"))
		at := start
		for _, c := range chains {
			if issued := c[0].NotBefore.Add(10 * time.Second); issued.After(at) {
				at = issued
			}
		}
		m, err := New(t.Context(), crashConfig(t, dir, func() time.Time { return at }))
		require.NoError(t, err, "iteration %d", iter)
		for _, infos := range [][]AuthorityInfo{m.X509CAs(), m.JWTKeys()} {
			require.Equal(t, 1, countStates(infos)[StateActive])
		}
		for i, c := range chains {
			if at.Before(c[0].NotAfter) {
				require.NoError(t, verifyAt(m, c, at), "iteration %d, SVID %d", iter, i)
				checked++
			}
		}
	}
	require.Positive(t, checked, "no SVID was checked")
	t.Logf("%d SVID checks over %d records", checked, len(readRecords(t, filepath.Join(dir, "svids.log"))))
}

// readRecords parses the complete records of the SVID log; a record cut by
// the kill has no end marker and was never reported.
func readRecords(t *testing.T, path string) [][]*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out [][]*x509.Certificate
	for {
		rec, rest, ok := bytes.Cut(data, []byte(recordEnd))
		if !ok {
			break
		}
		certs, err := pemutil.ParseCertificates(rec)
		require.NoError(t, err)
		out = append(out, certs)
		data = rest
	}
	return out
}
