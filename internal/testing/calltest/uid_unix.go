//go:build unix

package calltest

import (
	"os/exec"
	"syscall"
)

// runAs makes cmd run under uid, and the gid of the same number.
func runAs(cmd *exec.Cmd, uid int) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	return nil
}
