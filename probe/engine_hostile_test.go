package probe

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// readRecord reads one TLS record (header + body) from c.
func readRecord(c net.Conn) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

// clientHelloInfo pulls what a fake server needs out of a ClientHello
// record: session id, offered groups and key-share groups, extension order.
type clientHelloInfo struct {
	sessionID     []byte
	groups        []uint16
	shares        []uint16
	extOrder      []uint16
	cookie        []byte
	offersTLS13   bool
	isClientHello bool
}

func parseClientHello(rec []byte) clientHelloInfo {
	var ci clientHelloInfo
	if len(rec) < 9 || rec[0] != recHandshake || rec[5] != 1 {
		return ci
	}
	s := byteString(rec[9:])
	_, _ = s.u16()
	_, _ = s.take(32)
	sid, _ := s.vec8()
	_, _ = s.vec16()
	_, _ = s.vec8()
	exts, _ := s.vec16()
	ci.sessionID, ci.isClientHello = sid, true
	for len(exts) > 0 {
		typ, _ := exts.u16()
		data, ok := exts.vec16()
		if !ok {
			break
		}
		ci.extOrder = append(ci.extOrder, typ)
		switch typ {
		case extGroups:
			l, _ := data.vec16()
			for len(l) > 1 {
				g, _ := l.u16()
				ci.groups = append(ci.groups, g)
			}
		case extKeyShare:
			l, _ := data.vec16()
			for len(l) > 3 {
				g, _ := l.u16()
				_, _ = l.vec16()
				ci.shares = append(ci.shares, g)
			}
		case extCookie:
			c, _ := data.vec16()
			ci.cookie = c
		case extSupportedVers:
			ci.offersTLS13 = bytes.Contains(data, []byte{3, 4})
		}
	}
	return ci
}

// hrrRecord is a HelloRetryRequest for ci asking for a share it lacks,
// with a cookie.
func hrrRecord(ci clientHelloInfo, cookie []byte) []byte {
	group := uint16(23)
	for _, g := range ci.groups {
		if realShareGroup(g) && !slices.Contains(ci.shares, g) {
			group = g
			break
		}
	}
	b := []byte{3, 3}
	b = append(b, helloRetryRandom[:]...)
	b = append(b, byte(len(ci.sessionID)))
	b = append(b, ci.sessionID...)
	b = append(b, 0x13, 0x01, 0)
	b = append(b, withLen16(bytes.Join([][]byte{
		tlsExtBytes(extSupportedVers, []byte{3, 4}),
		tlsExtBytes(extKeyShare, []byte{byte(group >> 8), byte(group)}),
		tlsExtBytes(extCookie, withLen16(cookie)),
	}, nil))...)
	msg := hsMessage(hsServerHello, b)
	return encodeRecords([]tlsRecord{plainRecord(recHandshake, msg)})
}

// hrrServer answers every ClientHello with a HelloRetryRequest and keeps
// the ClientHellos that carried a cookie (second hellos).
type hrrServer struct {
	mu      sync.Mutex
	seconds []clientHelloInfo
}

func (h *hrrServer) handle(c net.Conn) {
	for {
		rec, err := readRecord(c)
		if err != nil {
			return
		}
		ci := parseClientHello(rec)
		if !ci.isClientHello {
			continue // the client's CCS
		}
		if ci.cookie != nil {
			h.mu.Lock()
			h.seconds = append(h.seconds, ci)
			h.mu.Unlock()
		}
		if _, err := c.Write(hrrRecord(ci, []byte("cookie!!"))); err != nil {
			return
		}
	}
}

// TestEngineHostile runs every kind against servers that misbehave. Each
// target must settle within its deadline (generous slack: the machine is
// shared), with a status from the enum, a record for every kind and no
// fingerprint it did not earn.
func TestEngineHostile(t *testing.T) {
	const ioTimeout, deadline = 300 * time.Millisecond, 2 * time.Second
	answer := func(b []byte) func(net.Conn) {
		return func(c net.Conn) {
			readHello(c)
			_, _ = c.Write(b)
		}
	}
	garbage := make([]byte, 2048)
	_, _ = rand.Read(garbage)
	garbage[0] = 0x42 // never a TLS content type
	hrr := &hrrServer{}
	tests := []struct {
		name    string
		handler func(net.Conn)
		status  []stackprint.Status // acceptable overall statuses
	}{
		{"tarpit", func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }, []stackprint.Status{stackprint.StatusTimeout}},
		{"garbage", answer(garbage), []stackprint.Status{stackprint.StatusNotTLS}},
		{"drip", func(c net.Conn) {
			readHello(c)
			for _, b := range append([]byte{0x16, 3, 3, 0, 0x7a}, make([]byte, 0x7a)...) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}, []stackprint.Status{stackprint.StatusHandshakeError, stackprint.StatusTimeout}},
		{"16 MiB handshake message", func(c net.Conn) {
			readHello(c)
			_, _ = c.Write(append([]byte{0x16, 3, 3, 0x40, 0, 2, 0xff, 0xff, 0xff}, make([]byte, 0x4000-4)...))
			chunk := append([]byte{0x16, 3, 3, 0x40, 0}, make([]byte, 0x4000)...)
			for range 1024 { // 16 MiB
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}, []stackprint.Status{stackprint.StatusPartial}}, // jarm.py parses the header as a ServerHello
		{"record header announcing 64 KiB", answer([]byte{0x16, 3, 3, 0xff, 0xff, 2, 0, 0, 0x46}), []stackprint.Status{stackprint.StatusHandshakeError}},
		{"immediate reset", func(c net.Conn) {
			_ = c.(*net.TCPConn).SetLinger(0)
		}, []stackprint.Status{stackprint.StatusReset, stackprint.StatusRefused}}, // connect itself may see the RST
		{"hello retry request to everything", hrr.handle, []stackprint.Status{stackprint.StatusPartial}},
		{"plain http", answer([]byte("HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n")), []stackprint.Status{stackprint.StatusNotTLS}},
		{"sslv2 server hello", answer([]byte{0x80, 0x2e, 0x04, 0x00, 0x01, 0x00, 0x02, 0x00, 0x10, 0x00, 0x03, 0x00, 0x10, 0x07, 0x00, 0xc0}), []stackprint.Status{stackprint.StatusNotTLS}},
	}
	e, err := NewEngine(EngineConfig{IOTimeout: ioTimeout, Deadline: deadline})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ap := serveLoopback(t, netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}).String(), tc.handler)
			res := e.Probe(testCtx(t), targetOf(ap), "")
			t.Logf("%s: %s conns=%d %v %q", tc.name, res.Status, res.Conns, res.Duration.Round(time.Millisecond), res.Error)
			for _, k := range res.Kinds {
				t.Logf("  %s: %s conns=%d %q", k.Kind, k.Status, k.Conns, k.Error)
			}
			if !slices.Contains(tc.status, res.Status) {
				t.Errorf("status %s, want one of %v", res.Status, tc.status)
			}
			if res.Duration > deadline+3*time.Second {
				t.Errorf("took %v with a %v deadline", res.Duration, deadline)
			}
			checkEngineInvariants(t, res, 4)
			if res.HasJARM() && res.Status != stackprint.StatusPartial {
				t.Errorf("JARM %s from a hostile server", res.JARM)
			}
			if res.HasATSF() && res.Status != stackprint.StatusPartial {
				t.Errorf("ATSF %s from a hostile server", res.ATSF.Fingerprint)
			}
		})
	}
}

// TestATSFHelloRetryCookie: after a HelloRetryRequest with a cookie, the
// second ClientHello carries the cookie right before key_share (the
// reference's default position) and the HRR features are recorded.
func TestATSFHelloRetryCookie(t *testing.T) {
	hrr := &hrrServer{}
	ap := serveLoopback(t, "127.0.1.30", hrr.handle)
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, IOTimeout: time.Second, Deadline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}, "")
	for _, h := range res.ATSF.Hellos {
		t.Logf("%s %q %q", h.Name, h.Raw, h.Error)
	}
	// 4520 offers TLS 1.3 without a share: the HRR asks for P-256.
	// The cookie (44) counts by presence only.
	if got := res.ATSF.Hellos[0].Raw; got != "771_1301____43.AwQ-51.23-44._" {
		t.Errorf("random4520: %q", got)
	}
	hrr.mu.Lock()
	defer hrr.mu.Unlock()
	if len(hrr.seconds) == 0 {
		t.Fatal("no second ClientHello seen")
	}
	for _, ci := range hrr.seconds {
		i := slices.Index(ci.extOrder, extCookie)
		if i < 0 || i+1 >= len(ci.extOrder) || ci.extOrder[i+1] != extKeyShare || string(ci.cookie) != "cookie!!" {
			t.Errorf("second hello extensions %v, cookie %q", ci.extOrder, ci.cookie)
		}
	}
}

// checkEngineInvariants holds for every Engine result.
func checkEngineInvariants(t *testing.T, res stackprint.Result, kinds int) {
	t.Helper()
	valid := []stackprint.Status{stackprint.StatusOK, stackprint.StatusPartial, stackprint.StatusTimeout, stackprint.StatusRefused,
		stackprint.StatusReset, stackprint.StatusNotTLS, stackprint.StatusHandshakeError, stackprint.StatusRateLimited, stackprint.StatusBudgetExceeded}
	if !slices.Contains(valid, res.Status) {
		t.Errorf("status %q not in the enum", res.Status)
	}
	if len(res.Kinds) != kinds {
		t.Errorf("%d kind records, want %d", len(res.Kinds), kinds)
	}
	sum := 0
	for _, k := range res.Kinds {
		sum += k.Conns
		if !slices.Contains(valid, k.Status) {
			t.Errorf("%s: status %q not in the enum", k.Kind, k.Status)
		}
		if k.Status != stackprint.StatusOK && k.Error == "" {
			t.Errorf("%s: %s without an error", k.Kind, k.Status)
		}
	}
	if sum != res.Conns || res.Conns > DefaultMaxConns {
		t.Errorf("conns %d, kinds sum to %d", res.Conns, sum)
	}
	if res.Status != stackprint.StatusOK && res.Error == "" {
		t.Error("failed result without an error")
	}
	if res.Started.IsZero() || res.Duration <= 0 {
		t.Error("Started/Duration not set")
	}
	if res.JARM != "" && res.JARM != stackprint.ZeroJARM && len(res.JARM) != 62 {
		t.Errorf("JARM %q", res.JARM)
	}
	if res.ATSF != nil && (res.ATSF.ID == "") != (res.ATSF.Fingerprint == "") {
		t.Errorf("ATSF id %q without fingerprint or the reverse", res.ATSF.ID)
	}
}

// TestEngineReadCapMemory: a server streaming a 16 MiB handshake message
// must not make the prober allocate anything near it.
func TestEngineReadCapMemory(t *testing.T) {
	ap := serveLoopback(t, "127.0.1.40", func(c net.Conn) {
		readHello(c)
		_, _ = c.Write(append([]byte{0x16, 3, 3, 0x40, 0, 11, 0xff, 0xff, 0xff}, make([]byte, 0x4000-4)...))
		chunk := append([]byte{0x16, 3, 3, 0x40, 0}, make([]byte, 0x4000)...)
		for range 1024 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	e, err := NewEngine(EngineConfig{IOTimeout: time.Second, Deadline: 5 * time.Second, ConnRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := e.Probe(testCtx(t), targetOf(ap), "")
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%s conns=%d, allocated %d KiB", res.Status, res.Conns, allocated>>10)
	if allocated > 16<<20 {
		t.Errorf("allocated %d MiB for one target; the read caps should bound it far below the 16 MiB announced", allocated>>20)
	}
}

func TestRecordConnLimits(t *testing.T) {
	pipe := func(data []byte) net.Conn {
		c, s := net.Pipe()
		go func() {
			_, _ = s.Write(data)
			s.Close()
		}()
		return c
	}
	rec := func(n int) []byte { return append([]byte{0x17, 3, 3, byte(n >> 8), byte(n)}, make([]byte, n)...) }
	buf := make([]byte, 1<<16)

	// Oversized header: refused before its body is read.
	rc := newRecordConn(testCtx(t), pipe([]byte{0x16, 3, 3, 0xff, 0xff}), time.Second, DefaultReadCap)
	if _, err := rc.Read(buf); !errors.Is(err, errRecordTooBig) {
		t.Errorf("oversized record: %v", err)
	}
	// The per-connection cap stops a stream of valid records.
	rc = newRecordConn(testCtx(t), pipe(bytes.Repeat(rec(16000), 10)), time.Second, 50000)
	var err error
	for range 10 {
		if _, err = rc.Read(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, errReadCapHit) || len(rc.records) != 3 {
		t.Errorf("read cap: %v after %d records", err, len(rc.records))
	}
	// One record per Read, never more, even with a huge buffer.
	rc = newRecordConn(testCtx(t), pipe(append(rec(10), rec(20)...)), time.Second, DefaultReadCap)
	if n, _ := rc.Read(buf); n != 15 {
		t.Errorf("first read returned %d bytes, want one 15-byte record", n)
	}
	// Non-TLS first bytes.
	rc = newRecordConn(testCtx(t), pipe([]byte("HTTP/1.1 200 OK\r\n")), time.Second, DefaultReadCap)
	if _, err := rc.Read(buf); !errors.Is(err, errNotTLS) {
		t.Errorf("http answer: %v", err)
	}
}
