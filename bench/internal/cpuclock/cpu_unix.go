//go:build unix

package cpuclock

import (
	"syscall"
	"time"
)

// Process returns the CPU time (user + system) this process used so far.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
