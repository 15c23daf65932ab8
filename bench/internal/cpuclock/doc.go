// Package cpuclock reads the CPU time of the benchmark's own process, for
// the CPU columns of make bench and make bench-groups.
package cpuclock
