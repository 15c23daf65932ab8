package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// fsyncResult is the disk's raw rate of small appends each followed by an
// fsync: the ceiling of a log that syncs once per write, and the unit in
// which group commit pays.
type fsyncResult struct {
	Dir     string
	N       int
	Elapsed time.Duration
	PerSec  float64
	Mean    time.Duration
}

// measureFsync appends a 128-byte record to a fresh file in dir and fsyncs
// it, n times (or until maxTime passes), and reports the rate.
func measureFsync(dir string, n int, maxTime time.Duration) (fsyncResult, error) {
	res := fsyncResult{Dir: dir}
	f, err := os.CreateTemp(dir, "fsync-*.dat")
	if err != nil {
		return res, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rec := make([]byte, payloadSize)
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := f.Write(rec); err != nil {
			return res, err
		}
		if err := f.Sync(); err != nil {
			return res, err
		}
		res.N++
		if time.Since(start) > maxTime {
			break
		}
	}
	res.Elapsed = time.Since(start)
	res.PerSec = float64(res.N) / res.Elapsed.Seconds()
	res.Mean = res.Elapsed / time.Duration(res.N)
	return res, nil
}

func (r fsyncResult) String() string {
	abs, err := filepath.Abs(r.Dir)
	if err != nil {
		abs = r.Dir
	}
	return fmt.Sprintf("%.0f fsyncs/s (%d × write 128 B + fsync in %v, mean %v, in %s)",
		r.PerSec, r.N, r.Elapsed.Round(time.Millisecond), r.Mean.Round(time.Microsecond), abs)
}
