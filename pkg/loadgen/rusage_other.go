//go:build !unix

package loadgen

// rusage reports no CPU time where getrusage(2) does not exist: the
// result's CPU figures are then zero.
func rusage() cpuTimes { return cpuTimes{} }
