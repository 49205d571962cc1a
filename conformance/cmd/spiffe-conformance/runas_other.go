//go:build !unix

package main

import (
	"errors"
	"os/exec"
)

// runAs is not available here: there are no uids to switch to.
func runAs(*exec.Cmd, int, int) error {
	return errors.New("-unregistered-uid needs a unix system; use -unregistered-addr")
}
