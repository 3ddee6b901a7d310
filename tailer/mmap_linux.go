package tailer

import "syscall"

func madviseSequential(b []byte) error { return syscall.Madvise(b, syscall.MADV_SEQUENTIAL) }

// dropMapped takes pages of a mapping that were read out of this process's
// resident set; the page cache keeps them.
func dropMapped(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
