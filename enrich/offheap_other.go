//go:build !unix

package enrich

// offHeap returns a zeroed slice of n T (in the heap on this platform).
func offHeap[T any](n int) ([]T, []byte) { return make([]T, n), nil }

func unmap([]byte) {}
