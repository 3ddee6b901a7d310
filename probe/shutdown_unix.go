//go:build unix

package probe

import (
	"net"
	"syscall"
)

// shutdownBoth is jarm.py's sock.shutdown(SHUT_RDWR). It fails, for
// instance with ENOTCONN, when the peer reset the connection after sending.
// Connections that expose no file descriptor (test wrappers) are skipped.
func shutdownBoth(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RDWR) }); err != nil {
		return nil
	}
	return serr
}
