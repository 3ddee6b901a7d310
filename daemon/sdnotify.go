package daemon

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends a state string to systemd's notification socket when the
// daemon runs under a Type=notify unit; it is a no-op otherwise. The
// protocol is one datagram per message to $NOTIFY_SOCKET (sd_notify(3)).
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// sdWatchdog pings systemd at half the WatchdogSec interval until ctx ends,
// as long as healthy reports no error.
func sdWatchdog(ctx context.Context, healthy func() error) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return
	}
	t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if healthy() == nil {
				_ = sdNotify("WATCHDOG=1")
			}
		}
	}
}
