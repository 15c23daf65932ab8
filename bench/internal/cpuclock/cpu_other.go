//go:build !unix

package cpuclock

import "time"

// Process is unknown on this platform.
func Process() time.Duration { return -1 }
