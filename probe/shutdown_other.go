//go:build !unix

package probe

import "net"

// shutdownBoth is a no-op where the unix shutdown(2) semantics of jarm.py
// are not available; Close still ends the connection.
func shutdownBoth(net.Conn) error { return nil }
