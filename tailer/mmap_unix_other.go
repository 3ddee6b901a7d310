//go:build unix && !linux

package tailer

func madviseSequential([]byte) error { return nil }

func dropMapped([]byte) {}
