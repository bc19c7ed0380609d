//go:build !unix

package historytest

import "os/exec"

// runAs runs c as the caller: only Unix has other users to switch to (and
// a root that PostgreSQL refuses).
func runAs(*exec.Cmd, int, int) {}
