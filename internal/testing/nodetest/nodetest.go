package nodetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TrustDomain is the trust domain of the servers and agents whose
// configuration names none.
var TrustDomain = spiffeid.RequireTrustDomainFromString("example.org")

// Timeout bounds every wait of the harness: for an agent to attest, to
// sync, for a workload to hold an SVID.
const Timeout = 30 * time.Second

// UID returns the selector the unix workload attestor gives the test
// process: unix:uid:<uid>.
func UID() attest.Selector {
	return attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
}

// leakChecked holds the names of the tests whose goroutines are checked
// already.
var leakChecked struct {
	sync.Mutex
	names map[string]bool
}

// checkLeaks has t check, after every cleanup registered later, that no
// goroutine started from now on is left; once per test, and not in a
// subtest of a test that checks already: the subtest may use what its
// parent started, whose goroutines (a connection's) live on after it.
// Safe to call from several goroutines of one test.
func checkLeaks(t testing.TB) {
	t.Helper()
	name := t.Name()
	leakChecked.Lock()
	defer leakChecked.Unlock()
	for p := name; ; {
		if leakChecked.names[p] {
			return
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if leakChecked.names == nil {
		leakChecked.names = map[string]bool{}
	}
	leakChecked.names[name] = true
	verify := leaktest.Check(t)
	t.Cleanup(func() {
		leakChecked.Lock()
		delete(leakChecked.names, name)
		leakChecked.Unlock()
		verify()
	})
}

// shortDir returns a new directory under os.TempDir, removed when the test
// ends: a unix socket's path must fit in 108 bytes, which t.TempDir can
// exceed.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nodetest")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// socketPath returns the path of a unix socket in a new short directory.
func socketPath(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(shortDir(t), name)
}
