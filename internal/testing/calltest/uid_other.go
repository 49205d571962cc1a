//go:build !unix

package calltest

import (
	"errors"
	"os/exec"
)

// runAs fails: starting a process under another uid needs a unix system.
func runAs(*exec.Cmd, int) error {
	return errors.New("calltest: callers under another uid need a unix system")
}
