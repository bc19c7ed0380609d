//go:build unix

package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMakeClusterUsesTheBuiltBinary: `make cluster` runs the binary `make
// build` made (TestMain ran it), with its version, and builds nothing again
// while no source changed.
func TestMakeClusterUsesTheBuiltBinary(t *testing.T) {
	for _, target := range []string{"build", "cluster"} {
		out, err := exec.Command("make", "-n", "-C", repoRoot, target).CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		if strings.Contains(string(out), "go build") {
			t.Errorf("make %s would build again although no source changed:\n%s", target, out)
		}
		if target == "cluster" && !strings.Contains(string(out), "LIVECHAT_BIN=bin/livechat") {
			t.Errorf("make cluster does not run bin/livechat:\n%s", out)
		}
	}
	want, err := exec.Command("git", "-C", repoRoot, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	out, err := exec.Command(livechatBin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("livechat version: %v\n%s", err, out)
	}
	if v := strings.TrimSpace(string(want)); !strings.Contains(string(out), v) {
		t.Errorf("bin/livechat version = %q, want it to name %s", out, v)
	}
}
