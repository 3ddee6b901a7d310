package enrich

import "syscall"

// hugePages asks for transparent huge pages for a mapping (a hint: the
// kernel may decline, or have them disabled).
func hugePages(mem []byte) {
	if len(mem) >= 2<<20 {
		_ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE)
	}
}
