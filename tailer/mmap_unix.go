//go:build unix

package tailer

import (
	"os"
	"syscall"
)

// mapFile maps a whole regular file read-only, or returns nil when it
// cannot (empty, too large for the address space, mmap refused): the
// caller then reads it. unmap must be called when done.
func mapFile(f *os.File) (data []byte, unmap func()) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < mmapMinSize || fi.Size() != int64(int(fi.Size())) {
		return nil, nil
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	_ = madviseSequential(b)
	return b, func() { _ = syscall.Munmap(b) }
}
