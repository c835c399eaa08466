//go:build unix

package topology

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process used so far,
// garbage collection and every goroutine included: per iteration it is a
// cost that other load on the machine changes much less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
