package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// The tests here tie each of the extractor's and client's rules that
// follow the reference scanner's measured behaviour (docs/ATSF.md §2.1, §2.2.1)
// to a real server on loopback that shows it.

// readTeeDialer keeps every byte each connection read, per connection.
type readTeeDialer struct {
	mu    sync.Mutex
	conns []*bytes.Buffer
}

type readTeeConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c *readTeeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (d *readTeeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b := &bytes.Buffer{}
	d.conns = append(d.conns, b)
	return &readTeeConn{Conn: c, mu: &d.mu, buf: b}, nil
}

func (d *readTeeDialer) received(i int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.conns[i].Bytes())
}

// shBlock parses the first ServerHello in a server's byte stream on its
// own (not with the code under test) and says whether it ended right
// after the compression method ("absent"), had an empty block ("empty")
// or extensions ("some"); "" when there was no ServerHello.
func shBlock(stream []byte) string {
	var hs []byte
	for len(stream) >= 5 {
		n := int(stream[3])<<8 | int(stream[4])
		if len(stream) < 5+n {
			break
		}
		if stream[0] == recHandshake {
			hs = append(hs, stream[5:5+n]...)
		}
		stream = stream[5+n:]
	}
	if len(hs) < 4 || hs[0] != hsServerHello {
		return ""
	}
	n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if len(hs) < 4+n || n < 2+32+1 {
		return ""
	}
	body := hs[4 : 4+n]
	rest := body[2+32:]
	sid := int(rest[0])
	if len(rest) < 1+sid+3 {
		return ""
	}
	rest = rest[1+sid+3:]
	switch {
	case len(rest) == 0:
		return "absent"
	case len(rest) == 2 && rest[0] == 0 && rest[1] == 0:
		return "empty"
	}
	return "some"
}

// atsfField returns field i (0 version, 1 cipher, 2 SH, 3 EE, 4 CR, 5
// HRR, 6 CT) of a per-ClientHello string.
func atsfField(raw string, i int) string {
	raw, _, _ = strings.Cut(raw, "<")
	f := strings.Split(raw, "_")
	if len(f) != 7 {
		return "?"
	}
	return f[i]
}

// extTypes lists the extension types of one encoded field.
func extTypes(field string) []uint16 {
	if field == "" || field == "-" {
		return nil
	}
	var out []uint16
	for _, e := range strings.Split(field, "-") {
		typ, _, _ := strings.Cut(e, ".")
		n, err := strconv.Atoi(typ)
		if err != nil {
			return []uint16{0xffff}
		}
		out = append(out, uint16(n))
	}
	return out
}

// probeATSF runs the ATSF kind against ap through d.
func probeATSF(t *testing.T, d Dialer, ap net.Addr, sni string) stackprint.Result {
	t.Helper()
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, Dialer: d, IOTimeout: 3 * time.Second, Deadline: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tcp := ap.(*net.TCPAddr).AddrPort()
	res := e.Probe(testCtx(t), stackprint.Target{IP: tcp.Addr(), Port: tcp.Port(), SNI: sni}, "")
	if res.ATSF == nil || len(res.ATSF.Hellos) != 10 {
		t.Fatalf("no ATSF result: %+v", res)
	}
	return res
}

// Rule SH-absent: a ServerHello without an extensions block gives an empty
// SH field, one with an empty block gives "-". Shown by OpenSSL (TLS 1.2
// only, CBC suites: random9428), by Go crypto/tls without SNI (random458)
// and by a server that sends an empty block.
func TestATSFServerHelloExtensionsBlock(t *testing.T) {
	certDir := t.TempDir()
	opensslCerts(t, certDir)
	cases := []struct {
		name   string
		start  func(t *testing.T) net.Addr
		absent []string // hellos whose ServerHello must have no block
		empty  []string // hellos whose ServerHello must have an empty block
	}{
		{"openssl-tls12-cbc", func(t *testing.T) net.Addr {
			ap := startOpenSSL(t, "127.0.0.91", certDir, "rsa.crt", "rsa.key", "-tls1_2",
				"-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:@SECLEVEL=0")
			return net.TCPAddrFromAddrPort(ap)
		}, []string{"random9428"}, nil},
		{"go-crypto-tls-noSNI", func(t *testing.T) net.Addr {
			cfg := tlsConfigECDSA(t)
			cfg.NextProtos = nil
			return net.TCPAddrFromAddrPort(startGoHTTPS(t, "127.0.0.92", cfg))
		}, []string{"random458"}, nil},
		{"empty-block", func(t *testing.T) net.Addr {
			// Answers every ClientHello with a TLS 1.2 ServerHello whose
			// extensions block is present and empty, then closes.
			ap := serveLoopback(t, "127.0.0.93", func(c net.Conn) {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				hdr := make([]byte, 5)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(int(hdr[3])<<8|int(hdr[4]))); err != nil {
					return
				}
				sh := shMessage(0x0303, 0x003c, false, []byte{})
				_, _ = c.Write(append([]byte{recHandshake, 3, 3, byte(len(sh) >> 8), byte(len(sh))}, sh...))
			})
			return net.TCPAddrFromAddrPort(ap)
		}, nil, ATSFHelloNames()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &readTeeDialer{}
			res := probeATSF(t, d, tc.start(t), "")
			if len(d.conns) != 10 {
				t.Fatalf("%d connections, want 10", len(d.conns))
			}
			for i, h := range res.ATSF.Hellos {
				block := shBlock(d.received(i))
				sh := atsfField(h.Raw, 2)
				switch block {
				case "absent":
					if sh != "" || h.Raw == "" {
						t.Errorf("%s: ServerHello without extensions block gave SH field %q (raw %q)", h.Name, sh, h.Raw)
					}
				case "empty":
					if sh != "-" {
						t.Errorf("%s: ServerHello with an empty block gave SH field %q (raw %q)", h.Name, sh, h.Raw)
					}
				case "some":
					if sh == "" || sh == "-" {
						t.Errorf("%s: ServerHello with extensions gave SH field %q (raw %q)", h.Name, sh, h.Raw)
					}
				}
				if slices.Contains(tc.absent, h.Name) && block != "absent" {
					t.Errorf("%s: the server's ServerHello was %q, the case needs one without a block (raw %q)", h.Name, block, h.Raw)
				}
				if slices.Contains(tc.empty, h.Name) && block != "empty" {
					t.Errorf("%s: the server's ServerHello was %q, want an empty block (raw %q)", h.Name, block, h.Raw)
				}
				t.Logf("%s %-6s %q", h.Name, block, h.Raw)
			}
		})
	}
}

// Rule CH2-order: after a HelloRetryRequest with a cookie, the second
// ClientHello has cookie (44) at its default place and the reversal quirk
// applied to the n+1 extensions. Shown by a server that, like NSS, sends a
// cookie and answers EncryptedExtensions in the client's order.
func TestATSFSecondHelloOrder(t *testing.T) {
	const (
		grease4520 = 0xcaca
		grease7225 = 0x8a8a
	)
	cases := []struct {
		sni      string
		ch2_4520 []uint16
		ee4520   []uint16
		ch2_7225 []uint16
	}{
		// 12 extensions: only the first and last swap.
		{"example.test",
			[]uint16{45, 5, 10, 13, 0xff01, 16, 43, 44, 51, 28, grease4520, 0},
			[]uint16{10, 16, 28, 0},
			[]uint16{0, 10, 35, 13, 16, 18, 43, 44, 51, grease7225}},
		// 11 extensions: fully reversed.
		{"",
			[]uint16{45, grease4520, 28, 51, 44, 43, 16, 0xff01, 13, 10, 5},
			[]uint16{28, 16, 10},
			[]uint16{10, 35, 13, 16, 18, 43, 44, 51, grease7225}},
	}
	for i, tc := range cases {
		t.Run("sni="+tc.sni, func(t *testing.T) {
			srv := newEchoServer(t)
			addr := srv.start(t, "127.0.0.9"+strconv.Itoa(4+i))
			res := probeATSF(t, nil, addr, tc.sni)
			var second [][]uint16
			for _, o := range srv.helloOrders() {
				if slices.Contains(o, extCookie) {
					second = append(second, o)
				}
			}
			if len(second) != 2 {
				t.Fatalf("%d second ClientHellos, want 2 (random4520, random7225): %v", len(second), srv.helloOrders())
			}
			if !slices.Equal(second[0], tc.ch2_4520) {
				t.Errorf("random4520 second hello order\n got %v\nwant %v", second[0], tc.ch2_4520)
			}
			if !slices.Equal(second[1], tc.ch2_7225) {
				t.Errorf("random7225 second hello order\n got %v\nwant %v", second[1], tc.ch2_7225)
			}
			h := res.ATSF.Hellos[0]
			if h.Name != "random4520" || h.Error != "" || h.Version != versionTLS13 {
				t.Fatalf("random4520: %+v", h)
			}
			if got := extTypes(atsfField(h.Raw, 3)); !slices.Equal(got, tc.ee4520) {
				t.Errorf("random4520 EncryptedExtensions order %v, want %v (raw %q)", got, tc.ee4520, h.Raw)
			}
			if got := extTypes(atsfField(h.Raw, 5)); !slices.Equal(got, []uint16{43, 51, 44}) {
				t.Errorf("random4520 HRR field %v (raw %q)", got, h.Raw)
			}
		})
	}
}

// Rule ALPN-unoffered: a server selecting a protocol the client did not
// offer does not stop the handshake (the reference's Go 1.16 client only
// refuses an ALPN answer to a hello without ALPN), so the Certificate
// entry's extensions are recorded. The certificate kind gets its leaf too.
func TestATSFUnofferedALPN(t *testing.T) {
	srv := newEchoServer(t)
	srv.forceALPN = "http/1.1"
	addr := srv.start(t, "127.0.0.96")
	res := probeATSF(t, nil, addr, "")
	alpn := "16." + base64.RawStdEncoding.EncodeToString(withLen16(append([]byte{8}, "http/1.1"...)))
	var h stackprint.ATSFHello
	for _, x := range res.ATSF.Hellos {
		if x.Name == "random6306" {
			h = x
		}
	}
	// random6306 offers imap, sunrpc, spdy/3, ftp, stun.nat-discovery,
	// spdy/2 and mqtt, a real x25519 share and SCT.
	if h.Error != "" || h.Version != versionTLS13 {
		t.Errorf("random6306 stopped: %+v", h)
	}
	if ee := atsfField(h.Raw, 3); !slices.Contains(strings.Split(ee, "-"), alpn) {
		t.Errorf("random6306 EE %q lacks the forced ALPN %q", ee, alpn)
	}
	if ct := atsfField(h.Raw, 6); ct != "18." {
		t.Errorf("random6306 certificate entry field %q, want %q (raw %q)", ct, "18.", h.Raw)
	}

	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindCert}, IOTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tcp := addr.(*net.TCPAddr).AddrPort()
	cres := e.Probe(testCtx(t), stackprint.Target{IP: tcp.Addr(), Port: tcp.Port(), SNI: "example.test"}, "")
	if cres.Cert == nil || cres.Kinds[0].Status != stackprint.StatusOK {
		t.Errorf("cert kind against a server forcing ALPN: %+v", cres.Kinds)
	}
}

// The cert kind offers no ALPN, so a server that would force one (Botan in
// the lab) has nothing to answer; this checks that against crypto/tls
// requiring a protocol.
func TestCertNoALPNOffered(t *testing.T) {
	var got []string
	var mu sync.Mutex
	cfg := tlsConfigECDSA(t)
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		got = append(got, strings.Join(hi.SupportedProtos, ","))
		mu.Unlock()
		return nil, nil
	}
	ap := startGoHTTPS(t, "127.0.0.97", cfg)
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindCert}, IOTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port()}, "")
	if res.Status != stackprint.StatusOK {
		t.Fatalf("cert: %s %s", res.Status, res.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "" {
		t.Errorf("offered ALPN %q, want none", got)
	}
}
