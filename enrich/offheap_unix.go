//go:build unix

package enrich

import (
	"syscall"
	"unsafe"
)

// offHeap returns a zeroed slice of n T in anonymous memory outside the Go
// heap, and the mapping to give to unmap (nil when it fell back to the
// heap). T must hold no pointers. Pages become resident only when
// touched, and the garbage collector neither scans them nor counts them
// towards its next goal: a million cached targets do not double the heap
// the daemon may grow to.
func offHeap[T any](n int) ([]T, []byte) {
	var zero T
	size := int(unsafe.Sizeof(zero)) * n
	if size == 0 {
		return nil, nil
	}
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]T, n), nil // no mapping: the heap will do
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), n), mem
}

func unmap(mem []byte) {
	if mem != nil {
		_ = syscall.Munmap(mem)
	}
}
