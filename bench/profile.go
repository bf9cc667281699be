package main

import (
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile of a child run to path
// (UNROOT_BENCH_CPUPROFILE); the returned function stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
