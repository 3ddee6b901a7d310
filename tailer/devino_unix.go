//go:build unix

package tailer

import (
	"os"
	"syscall"
)

// devIno extracts the device and inode of fi (zero when unavailable).
func devIno(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // not uint64 on every platform
	}
	return 0, 0
}
