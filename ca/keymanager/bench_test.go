package keymanager_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/ca/keymanager/pkcs11"
	"github.com/spiffekit/spiffekit/ca/keymanager/tpm"
	"github.com/spiffekit/spiffekit/internal/testing/softhsmtest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsmtest.Cleanup()
	os.Exit(code)
}

// benchKeyManagers opens each key manager for a benchmark: the software
// key (in memory; on disk it is the same key once loaded), a SoftHSM2
// token through PKCS#11 (in the process), and swtpm's TPM (a process of
// its own, whose pid open returns so that its CPU time is counted).
var benchKeyManagers = []struct {
	name string
	open func(b *testing.B) (ca.KeyManager, int)
}{
	{"software", func(*testing.B) (ca.KeyManager, int) { return keymanager.NewMemory(), 0 }},
	{"pkcs11-softhsm", func(b *testing.B) (ca.KeyManager, int) {
		tok := softhsmtest.NewToken(b)
		km, err := pkcs11.Open(pkcs11.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { km.Close() })
		return km, 0
	}},
	{"tpm-swtpm", func(b *testing.B) (ca.KeyManager, int) {
		t := swtpmtest.New(b, swtpmtest.NewCA(b))
		km, err := tpm.Open(tpm.Config{Device: t.Socket, Dir: b.TempDir() + "/keys"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { km.Close() })
		return km, pidOf(b, t.Socket)
	}},
}

// pidOf returns the pid of the process whose command line names arg.
func pidOf(b *testing.B, arg string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(arg)) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	b.Fatalf("no process with %s in its command line", arg)
	return 0
}

// cpuTime is the CPU time, user and system, this process and the process
// pid (if not 0) have used.
func cpuTime(b *testing.B, pid int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if pid != 0 {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		// The fields after the command's name, which is in parentheses:
		// utime and stime are the 12th and 13th, in clock ticks (100 Hz).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		utime, _ := strconv.Atoi(f[11])
		stime, _ := strconv.Atoi(f[12])
		d += time.Duration(utime+stime) * 10 * time.Millisecond
	}
	return d
}

// reportCPU reports the CPU time per operation since start: on a machine
// whose cores others share, it says what a signature costs when the wall
// clock cannot.
func reportCPU(b *testing.B, pid int, start time.Duration) {
	perOp := float64(cpuTime(b, pid)-start) / float64(b.N)
	b.ReportMetric(perOp/1e3, "cpu-µs/op")
	b.ReportMetric(1e9/perOp, "svids/cpu-s")
}

// BenchmarkSignX509SVID measures minting an X509-SVID (one signature by
// the CA key) with the CA key, ECDSA P-256, in each key manager: one
// caller, then as many as GOMAXPROCS. Besides the wall clock's figures
// (ns/op, svids/s), it reports the CPU time of an SVID, the benchmark's
// process and swtpm's together (cpu-µs/op, svids/cpu-s).
//
//	go test -run '^$' -bench BenchmarkSignX509SVID -benchmem ./ca/keymanager
func BenchmarkSignX509SVID(b *testing.B) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	for _, km := range benchKeyManagers {
		b.Run(km.name, func(b *testing.B) {
			keys, pid := km.open(b)
			signer, err := keys.GenerateKey(b.Context(), "x509-bench", ca.ECP256)
			if err != nil {
				b.Fatal(err)
			}
			root, err := ca.CreateRoot(b.Context(), ca.RootParams{Signer: signer, TrustDomain: td, TTL: 24 * time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: signer, Certificate: root})
			if err != nil {
				b.Fatal(err)
			}
			leaf, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			params := ca.X509SVIDParams{PublicKey: leaf.Public(), ID: spiffeid.RequireFromString("spiffe://example.org/workload")}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				start := cpuTime(b, pid)
				for b.Loop() {
					if _, err := authority.SignX509SVID(b.Context(), params); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
				reportCPU(b, pid, start)
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				start := cpuTime(b, pid)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := authority.SignX509SVID(b.Context(), params); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
				reportCPU(b, pid, start)
			})
		})
	}
}
