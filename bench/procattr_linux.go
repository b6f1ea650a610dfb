package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child process get SIGKILL when bench exits, however
// it exits, so an interrupted run leaves no upstream or tokentap behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
