//go:build unix

package historytest

import (
	"os/exec"
	"syscall"
)

// runAs makes c run as uid:gid, or as the caller when uid is -1.
func runAs(c *exec.Cmd, uid, gid int) {
	if uid >= 0 {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
}
