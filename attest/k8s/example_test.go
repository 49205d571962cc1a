//go:build linux

package k8s_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8s"
)

// A process outside any pod gets no k8s selectors, and the kubelet is not
// asked. (Run in a pod, this example prints an error or the pod's
// selectors.)
func ExampleAttestor_Attest() {
	a, err := k8s.New(k8s.Config{
		// The kubelet's read-only port; the secure port takes RootCAs and a
		// Token too.
		KubeletURL: "http://127.0.0.1:10255",
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
