package admin

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the other end of c has closed, even with data
// it sent still unread (POLLRDHUP): a killed client's upload is cut off
// at once, not after the socket's buffer of servers.
func peerGone(c net.Conn) bool {
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			gone = true
		}
	})
	return gone
}
