//go:build !unix

package main

import "time"

// processCPU is unknown on this platform.
func processCPU() time.Duration { return -1 }
