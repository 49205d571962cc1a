//go:build linux

package docker_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/docker"
)

// A process outside any container gets no docker selectors, and the
// daemon is not asked. (Run in a container, this example prints an
// error or the container's selectors.)
func ExampleAttestor_Attest() {
	a, err := docker.New(docker.Config{
		SocketPath: "/var/run/docker.sock",
		AllowedEnv: []string{"APP_ROLE"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	got, err := a.Attest(context.Background(), attest.Workload{PID: os.Getpid()})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got)
	// Output:
	// []
}
