//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// runAs makes cmd run under uid and gid, with no supplementary groups.
func runAs(cmd *exec.Cmd, uid, gid int) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return nil
}
