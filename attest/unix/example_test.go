//go:build linux

package unix_test

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
)

// Attest the current process, as a Workload API server would attest the
// process at the other end of a connection.
func ExampleAttestor_Attest() {
	a, err := unix.New(unix.Config{SkipHash: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	got, err := a.Attest(context.Background(), attest.Workload{
		PID:         os.Getpid(),
		Credentials: &attest.Credentials{UID: os.Geteuid(), GID: os.Getegid()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	uid := attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Geteuid())}
	fmt.Println("has uid selector:", got.Contains(uid))
	// Output:
	// has uid selector: true
}
