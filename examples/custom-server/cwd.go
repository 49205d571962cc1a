package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spiffekit/spiffekit/attest"
)

// cwdAttestor gives a workload the selector cwd:<its working directory>,
// read from /proc. Combined with attest/unix, an entry can ask for a user
// working in a given directory.
type cwdAttestor struct{}

func (cwdAttestor) Attest(_ context.Context, w attest.Workload) (attest.Selectors, error) {
	// The directory handle stays bound to the process that has the PID now:
	// once it exits, reads fail rather than describe a newcomer.
	proc, err := os.OpenRoot("/proc/" + strconv.Itoa(w.PID))
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("cwd: %w: %w", attest.ErrRejected, err)
	}
	defer proc.Close()
	dir, err := proc.Readlink("cwd")
	if err != nil {
		return attest.Selectors{}, fmt.Errorf("cwd: %w", err)
	}
	sel := attest.Selector{Type: "cwd", Value: dir}
	if err := sel.Validate(); err != nil {
		return attest.Selectors{}, nil // a path no entry can name gets no selector
	}
	return attest.NewSelectors(sel), nil
}
