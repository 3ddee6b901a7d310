package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// readHello reads the first bytes of the ClientHello.
func readHello(c net.Conn) []byte {
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	return buf[:n]
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T, ip string) netip.AddrPort {
	a := mustLoopback(t, ip)
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return ap
}

func targetOf(ap netip.AddrPort) stackprint.Target {
	return stackprint.Target{IP: ap.Addr(), Port: ap.Port()}
}

// checkNoJARM asserts the invariants of a failed run.
func checkNoJARM(t *testing.T, res stackprint.Result, wantJARM string) {
	t.Helper()
	if res.HasJARM() || res.JARM != wantJARM {
		t.Errorf("JARM %q, want %q and no fingerprint", res.JARM, wantJARM)
	}
	if res.Error == "" {
		t.Error("no Error on a failed run")
	}
}

func TestJARMHostile(t *testing.T) {
	hello := serverHello(0xc02f, []byte{0xff, 0x01, 0x00, 0x01, 0x00})
	answer := func(b []byte) func(net.Conn) {
		return func(c net.Conn) {
			readHello(c)
			_, _ = c.Write(b)
		}
	}
	tests := []struct {
		name     string
		ip       string
		handler  func(net.Conn) // nil: closed port
		io       time.Duration
		status   stackprint.Status
		conns    int
		jarm     string // "" when the run yields no hash
		errSub   string
		maxDur   time.Duration
		okJARMOf string // raw whose hash an ok result must carry
	}{
		{name: "closed port", ip: "127.0.0.41", status: stackprint.StatusRefused, conns: 10, jarm: stackprint.ZeroJARM, errSub: "refused"},
		{name: "tarpit", ip: "127.0.0.42", io: 300 * time.Millisecond, status: stackprint.StatusTimeout, conns: 1, jarm: stackprint.ZeroJARM, errSub: "timeout", maxDur: 2 * time.Second,
			handler: func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }},
		{name: "garbage", ip: "127.0.0.43", status: stackprint.StatusNotTLS, conns: 10, jarm: stackprint.ZeroJARM, errSub: "not TLS",
			handler: answer(bytes.Repeat([]byte{0x42, 0x13, 0x37, 0x00}, 512))},
		{name: "plain http", ip: "127.0.0.43", status: stackprint.StatusNotTLS, conns: 10, jarm: stackprint.ZeroJARM, errSub: "HTTP/1.0 400",
			handler: answer([]byte("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))},
		{name: "alert only", ip: "127.0.0.44", status: stackprint.StatusHandshakeError, conns: 10, jarm: stackprint.ZeroJARM, errSub: "alert",
			handler: answer([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28})},
		{name: "close without answer", ip: "127.0.0.45", status: stackprint.StatusHandshakeError, conns: 10, jarm: stackprint.ZeroJARM, errSub: "closed without answering",
			handler: func(c net.Conn) { readHello(c) }},
		{name: "reset", ip: "127.0.0.46", status: stackprint.StatusReset, conns: 10, jarm: stackprint.ZeroJARM, errSub: "reset",
			handler: func(c net.Conn) {
				readHello(c)
				_ = c.(*net.TCPConn).SetLinger(0) // close sends RST
			}},
		{name: "split server hello", ip: "127.0.0.47", status: stackprint.StatusHandshakeError, conns: 10, jarm: stackprint.ZeroJARM, errSub: "16 03 03",
			handler: func(c net.Conn) {
				// jarm.py reads once: the 5-byte header is all it sees.
				readHello(c)
				_, _ = c.Write(hello[:5])
				time.Sleep(50 * time.Millisecond)
				_, _ = c.Write(hello[5:])
			}},
		{name: "hang on tls 1.1 probe", ip: "127.0.0.48", io: 300 * time.Millisecond, status: stackprint.StatusTimeout, conns: 6, jarm: stackprint.ZeroJARM, errSub: "probe 6", maxDur: 2 * time.Second,
			handler: func(c net.Conn) {
				if h := readHello(c); len(h) > 2 && h[2] == 0x02 {
					_, _ = io.Copy(io.Discard, c) // docs/JARM.md §2 row N
					return
				}
				_, _ = c.Write(hello)
			}},
		{name: "canned server hello", ip: "127.0.0.49", status: stackprint.StatusOK, conns: 10,
			okJARMOf: strings.TrimSuffix(strings.Repeat("c02f|0303||ff01,", 10), ","),
			handler:  answer(hello)},
		{name: "alpn with comma", ip: "127.0.0.50", status: stackprint.StatusHandshakeError, conns: 10, errSub: "ALPN",
			handler: answer(serverHello(0xc02f, alpnExt("a,b")))},
		{name: "alpn with pipe", ip: "127.0.0.51", status: stackprint.StatusOK, conns: 10,
			okJARMOf: strings.TrimSuffix(strings.Repeat("c02f|0303|a|b|0010,", 10), ","),
			handler:  answer(serverHello(0xc02f, alpnExt("a|b")))},
		{name: "tls 1.3 draft version", ip: "127.0.0.52", status: stackprint.StatusHandshakeError, conns: 10, errSub: "7f1c",
			handler: answer(append(append(bytes.Clone(hello[:9]), 0x7f, 0x1c), hello[11:]...))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ap netip.AddrPort
			if tc.handler == nil {
				ap = closedPort(t, tc.ip)
			} else {
				ap = serveLoopback(t, tc.ip, tc.handler)
			}
			j := NewJARM(JARMConfig{IOTimeout: tc.io})
			res := j.Probe(testCtx(t), targetOf(ap), ap.Addr().String())
			t.Logf("%s: %s conns=%d %v %q", tc.name, res.Status, res.Conns, res.Duration.Round(time.Millisecond), res.Error)
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s (error %q, raw %s)", res.Status, tc.status, res.Error, res.JARMRaw)
			}
			if res.Conns != tc.conns {
				t.Errorf("conns %d, want %d", res.Conns, tc.conns)
			}
			if tc.maxDur > 0 && res.Duration > tc.maxDur {
				t.Errorf("took %v, want at most %v", res.Duration, tc.maxDur)
			}
			if tc.status == stackprint.StatusOK {
				want, err := JARMHash(tc.okJARMOf)
				if err != nil || res.JARM != want || res.JARMRaw != tc.okJARMOf || res.Error != "" {
					t.Errorf("ok run: JARM %s raw %s err %q; want %s (%v)", res.JARM, res.JARMRaw, res.Error, want, err)
				}
				return
			}
			checkNoJARM(t, res, tc.jarm)
			if !strings.Contains(res.Error, tc.errSub) {
				t.Errorf("error %q does not mention %q", res.Error, tc.errSub)
			}
			if tc.status == stackprint.StatusTimeout && res.JARMRaw != jarmRawEmpty {
				t.Errorf("timeout raw %q, want ten |||", res.JARMRaw)
			}
		})
	}
}

func TestJARMDeadlineAndCancel(t *testing.T) {
	ap := serveLoopback(t, "127.0.0.42", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })

	t.Run("hard deadline", func(t *testing.T) {
		j := NewJARM(JARMConfig{IOTimeout: 5 * time.Second, Deadline: 250 * time.Millisecond})
		res := j.Probe(testCtx(t), targetOf(ap), "")
		if res.Status != stackprint.StatusTimeout || res.Duration > 2*time.Second || !strings.Contains(res.Error, "deadline") {
			t.Errorf("got %s after %v: %q", res.Status, res.Duration, res.Error)
		}
		checkNoJARM(t, res, stackprint.ZeroJARM)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(testCtx(t))
		time.AfterFunc(150*time.Millisecond, cancel)
		j := NewJARM(JARMConfig{IOTimeout: 5 * time.Second})
		res := j.Probe(ctx, targetOf(ap), "")
		if res.Status != stackprint.StatusTimeout || res.Duration > 2*time.Second || !strings.Contains(res.Error, "canceled") {
			t.Errorf("got %s after %v: %q", res.Status, res.Duration, res.Error)
		}
		checkNoJARM(t, res, stackprint.ZeroJARM)
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res := NewJARM(JARMConfig{}).Probe(ctx, targetOf(ap), "")
		if res.Status != stackprint.StatusTimeout || res.Conns != 0 {
			t.Errorf("got %s with %d conns: %q", res.Status, res.Conns, res.Error)
		}
	})
}

// recordingDialer counts dials and records what the prober writes. The conn
// keeps the *net.TCPConn embedded so the shutdown path stays real.
type recordingDialer struct {
	mu       sync.Mutex
	dials    int
	networks []string
	addrs    []string
	writes   [][]byte
	fail     error // returned instead of dialing, when set
}

type recordingConn struct {
	*net.TCPConn
	d *recordingDialer
}

func (c recordingConn) Write(b []byte) (int, error) {
	c.d.mu.Lock()
	c.d.writes = append(c.d.writes, bytes.Clone(b))
	c.d.mu.Unlock()
	return c.TCPConn.Write(b)
}

func (d *recordingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	d.networks = append(d.networks, network)
	d.addrs = append(d.addrs, addr)
	fail := d.fail
	d.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return recordingConn{c.(*net.TCPConn), d}, nil
}

func TestJARMCountingDialer(t *testing.T) {
	ap := startGoTLS(t, "127.0.0.26", &tls.Config{Certificates: []tls.Certificate{goCert(t, true)}})
	d := &recordingDialer{}
	j := NewJARM(JARMConfig{Dialer: d, Rand: zeroReader{}})
	res := j.Probe(testCtx(t), targetOf(ap), "example.com")
	if res.Status != stackprint.StatusOK || !res.HasJARM() {
		t.Fatalf("status %s, JARM %q, error %q", res.Status, res.JARM, res.Error)
	}
	if d.dials != 10 || res.Conns != 10 {
		t.Errorf("%d dials, Conns %d; want exactly 10", d.dials, res.Conns)
	}
	golden := readJARMGolden(t)
	if len(d.writes) != 10 {
		t.Fatalf("%d writes, want 10 (one whole ClientHello per connection)", len(d.writes))
	}
	for i, w := range d.writes {
		if !bytes.Equal(w, golden[i]) {
			t.Errorf("probe %d: sent bytes differ from the golden vector", i+1)
		}
		if d.networks[i] != "tcp4" || d.addrs[i] != ap.String() {
			t.Errorf("dial %d: %s %s", i+1, d.networks[i], d.addrs[i])
		}
	}
}

func TestJARMDialAddress(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		ip, network, addr string
	}{
		{"2001:db8::1", "tcp6", "[2001:db8::1]:8443"},
		{"::ffff:192.0.2.1", "tcp4", "192.0.2.1:8443"},
		{"192.0.2.1", "tcp4", "192.0.2.1:8443"},
	}
	for _, tc := range tests {
		// The dialer refuses without touching the network.
		d := &recordingDialer{fail: refused}
		res := NewJARM(JARMConfig{Dialer: d}).Probe(context.Background(),
			stackprint.Target{IP: netip.MustParseAddr(tc.ip), Port: 8443}, "")
		if res.Status != stackprint.StatusRefused || res.Conns != 10 || res.JARM != stackprint.ZeroJARM {
			t.Errorf("%s: %s conns=%d %q", tc.ip, res.Status, res.Conns, res.JARM)
		}
		for i := range d.addrs {
			if d.networks[i] != tc.network || d.addrs[i] != tc.addr {
				t.Fatalf("%s: dialed %s %s, want %s %s", tc.ip, d.networks[i], d.addrs[i], tc.network, tc.addr)
			}
		}
	}

	d := &recordingDialer{fail: errors.New("dialer exploded")}
	res := NewJARM(JARMConfig{Dialer: d}).Probe(context.Background(), stackprint.Target{}, "")
	if res.Status != stackprint.StatusRefused || res.Conns != 0 || d.dials != 0 {
		t.Errorf("invalid target: %s conns=%d dials=%d", res.Status, res.Conns, d.dials)
	}
}

// pipeDialer answers every dial with an in-memory peer; no network at all.
type pipeDialer struct {
	mu     sync.Mutex
	hellos [][]byte
	answer []byte
}

func (p *pipeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		h := readHello(server)
		p.mu.Lock()
		p.hellos = append(p.hellos, h)
		p.mu.Unlock()
		_, _ = server.Write(p.answer)
	}()
	return client, nil
}

func TestJARMDefaultSNI(t *testing.T) {
	p := &pipeDialer{answer: serverHello(0x1301, nil)}
	target := stackprint.Target{IP: netip.MustParseAddr("192.0.2.7"), Port: 443, SNI: "ignored.example"}
	res := NewJARM(JARMConfig{Dialer: p, Rand: zeroReader{}}).Probe(context.Background(), target, "")
	if res.Status != stackprint.StatusOK {
		t.Fatalf("status %s: %q", res.Status, res.Error)
	}
	want, err := BuildJARMProbes("192.0.2.7", zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.hellos) != 10 {
		t.Fatalf("%d hellos", len(p.hellos))
	}
	for i := range want {
		if !bytes.Equal(p.hellos[i], want[i]) {
			t.Errorf("probe %d: SNI is not the IP literal", i+1)
		}
	}
	if res.JARMRaw != strings.TrimSuffix(strings.Repeat("1301|0303||,", 10), ",") {
		t.Errorf("raw %s", res.JARMRaw)
	}
}

func TestJARMReadCap(t *testing.T) {
	big := append(serverHello(0xc02f, []byte{0xff, 0x01, 0x00, 0x01, 0x00}), make([]byte, 4000)...)
	p := &pipeDialer{answer: big}
	for _, c := range []int{0, -1, 100000} {
		if j := NewJARM(JARMConfig{Dialer: p, ReadCap: c}); j.readCap != JARMReadCap {
			t.Errorf("ReadCap %d → %d, want %d", c, j.readCap, JARMReadCap)
		}
	}
	// A cap below the ServerHello degrades the answer like a short read.
	res := NewJARM(JARMConfig{Dialer: p, ReadCap: 40}).Probe(context.Background(),
		stackprint.Target{IP: netip.MustParseAddr("192.0.2.7"), Port: 443}, "")
	if res.Status != stackprint.StatusHandshakeError {
		t.Errorf("ReadCap 40: %s %q", res.Status, res.JARMRaw)
	}
}

type panickingDialer struct{}

func (panickingDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	panic("dialer bug")
}

func TestJARMProbeInternalErrors(t *testing.T) {
	target := stackprint.Target{IP: netip.MustParseAddr("192.0.2.7"), Port: 443}
	for name, cfg := range map[string]JARMConfig{
		"rand fails":    {Rand: failingReader{}, Dialer: &recordingDialer{fail: errors.New("must not dial")}},
		"dialer panics": {Dialer: panickingDialer{}},
		"host too long": {Dialer: &recordingDialer{fail: errors.New("must not dial")}},
	} {
		sni := ""
		if name == "host too long" {
			sni = strings.Repeat("a", 70000)
		}
		res := NewJARM(cfg).Probe(context.Background(), target, sni)
		if res.Status != stackprint.StatusHandshakeError || res.JARM != stackprint.ZeroJARM || res.JARMRaw != jarmRawEmpty || res.Error == "" || res.Duration <= 0 {
			t.Errorf("%s: %+v", name, res)
		}
		if name != "dialer panics" && res.Conns != 0 {
			t.Errorf("%s: %d conns", name, res.Conns)
		}
	}
}
