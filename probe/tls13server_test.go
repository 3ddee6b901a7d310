package probe

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// echoServer is a small TLS 1.3 server written for the ATSF tests, because
// no stock Go or OpenSSL server shows two behaviours the reference scanner
// is known by:
//
//   - like NSS, it answers in EncryptedExtensions in the order the client
//     sent the extensions, and it sends a cookie in every
//     HelloRetryRequest, so the fingerprint shows the order of the second
//     ClientHello;
//   - with forceALPN set it selects that protocol whatever the client
//     offered (as Apache and Botan do in the lab), when the client sent
//     ALPN at all.
//
// It implements the RFC 8446 server side for x25519, P-256 and P-384,
// TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
// TLS_CHACHA20_POLY1305_SHA256 with an Ed25519 certificate, and it records
// the extension order of every ClientHello it reads.
type echoServer struct {
	forceALPN string
	leafExts  bool // answer status_request/SCT in the leaf entry

	cert []byte
	key  ed25519.PrivateKey

	mu     sync.Mutex
	hellos [][]uint16 // extension order of each ClientHello, in arrival order
}

func newEchoServer(t testing.TB) *echoServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(44),
		Subject:      pkix.Name{CommonName: "example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"example.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return &echoServer{cert: der, key: priv, leafExts: true}
}

// helloOrders returns the extension orders of the ClientHellos seen so far.
func (s *echoServer) helloOrders() [][]uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hellos)
}

// errAlerted: the server refused the hello with an alert, as it should.
var errAlerted = errors.New("refused with an alert")

// echoHello is what the server needs from one ClientHello.
type echoHello struct {
	sessionID []byte
	ciphers   []uint16
	order     []uint16
	exts      map[uint16][]byte
	shares    map[uint16][]byte
	groups    []uint16
	alpn      []string
}

func parseEchoHello(body []byte) (*echoHello, error) {
	s := byteString(body)
	if _, ok := s.take(2 + 32); !ok {
		return nil, errors.New("short hello")
	}
	sid, ok1 := s.vec8()
	cs, ok2 := s.vec16()
	_, ok3 := s.vec8()
	exts, ok4 := s.vec16()
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, errors.New("malformed hello")
	}
	ch := &echoHello{sessionID: sid, exts: map[uint16][]byte{}, shares: map[uint16][]byte{}}
	for len(cs) >= 2 {
		v, _ := cs.u16()
		ch.ciphers = append(ch.ciphers, v)
	}
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return nil, errors.New("malformed extensions")
		}
		ch.order = append(ch.order, typ)
		ch.exts[typ] = data
	}
	if d, ok := ch.exts[extKeyShare]; ok {
		s := byteString(d)
		list, _ := s.vec16()
		for len(list) > 0 {
			g, ok1 := list.u16()
			k, ok2 := list.vec16()
			if !ok1 || !ok2 {
				break
			}
			ch.shares[g] = k
		}
	}
	if d, ok := ch.exts[extGroups]; ok {
		s := byteString(d)
		list, _ := s.vec16()
		for len(list) >= 2 {
			g, _ := list.u16()
			ch.groups = append(ch.groups, g)
		}
	}
	if d, ok := ch.exts[extALPN]; ok {
		s := byteString(d)
		list, _ := s.vec16()
		for len(list) > 0 {
			p, ok := list.vec8()
			if !ok {
				break
			}
			ch.alpn = append(ch.alpn, string(p))
		}
	}
	return ch, nil
}

func echoCurve(g uint16) ecdh.Curve {
	switch g {
	case 29:
		return ecdh.X25519()
	case 23:
		return ecdh.P256()
	case 24:
		return ecdh.P384()
	}
	return nil
}

// echoReader reassembles plaintext handshake messages, skipping the
// client's change_cipher_spec records.
type echoReader struct {
	c   net.Conn
	buf []byte
}

func (r *echoReader) next() (uint8, []byte, []byte, error) {
	for {
		if len(r.buf) >= 4 {
			n := int(r.buf[1])<<16 | int(r.buf[2])<<8 | int(r.buf[3])
			if len(r.buf) >= 4+n {
				msg := r.buf[:4+n]
				r.buf = r.buf[4+n:]
				return msg[0], msg[4:], msg, nil
			}
		}
		var hdr [5]byte
		if _, err := io.ReadFull(r.c, hdr[:]); err != nil {
			return 0, nil, nil, err
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(r.c, body); err != nil {
			return 0, nil, nil, err
		}
		switch hdr[0] {
		case recChangeCipher:
		case recHandshake:
			r.buf = append(r.buf, body...)
		default:
			return 0, nil, nil, fmt.Errorf("record type %d", hdr[0])
		}
	}
}

// expandLabel is HKDF-Expand-Label with a context (tls13.go's helper has
// none).
func expandLabel(h func() hash.Hash, secret []byte, label string, ctx []byte, n int) []byte {
	full := "tls13 " + label
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, byte(len(ctx)))
	info = append(info, ctx...)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func handshakeMsg(typ uint8, body []byte) []byte { return hsMessage(typ, body) }

func echoRecord(c net.Conn, typ uint8, body []byte) error {
	_, err := c.Write(append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...))
	return err
}

// serve runs one handshake on c.
func (s *echoServer) serve(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := &echoReader{c: c}
	typ, body, raw, err := r.next()
	if err != nil || typ != 1 {
		return fmt.Errorf("first hello: %v", err)
	}
	ch, err := parseEchoHello(body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.hellos = append(s.hellos, ch.order)
	s.mu.Unlock()

	var suite uint16
	for _, id := range ch.ciphers {
		if _, ok := tls13SuiteByID(id); ok {
			suite = id
			break
		}
	}
	st, _ := tls13SuiteByID(suite)
	if suite == 0 || !bytes.Contains(ch.exts[extSupportedVers], []byte{3, 4}) {
		_ = echoRecord(c, recAlert, []byte{2, 70})
		return errAlerted
	}
	transcript := st.hash()
	transcript.Write(raw)

	group := uint16(0)
	for _, g := range ch.groups {
		if _, ok := ch.shares[g]; ok && echoCurve(g) != nil {
			group = g
			break
		}
	}
	if group == 0 {
		// HelloRetryRequest with a cookie, as NSS sends it.
		for _, g := range ch.groups {
			if echoCurve(g) != nil {
				group = g
				break
			}
		}
		if group == 0 {
			_ = echoRecord(c, recAlert, []byte{2, 40})
			return errAlerted
		}
		cookie := []byte("stackprint-echo-cookie")
		hrr := s.serverHello(helloRetryRandom[:], ch.sessionID, suite,
			tlsExtBytes(extSupportedVers, []byte{3, 4}),
			tlsExtBytes(extKeyShare, []byte{byte(group >> 8), byte(group)}),
			tlsExtBytes(extCookie, withLen16(cookie)))
		ch1Hash := transcript.Sum(nil)
		transcript.Reset()
		transcript.Write(append([]byte{254, 0, 0, byte(len(ch1Hash))}, ch1Hash...))
		transcript.Write(hrr)
		if err := echoRecord(c, recHandshake, hrr); err != nil {
			return err
		}
		if err := echoRecord(c, recChangeCipher, []byte{1}); err != nil {
			return err
		}
		typ, body, raw, err = r.next()
		if err != nil || typ != 1 {
			return fmt.Errorf("second hello: %v", err)
		}
		if ch, err = parseEchoHello(body); err != nil {
			return err
		}
		s.mu.Lock()
		s.hellos = append(s.hellos, ch.order)
		s.mu.Unlock()
		if !bytes.Equal(ch.exts[extCookie], withLen16(cookie)) {
			_ = echoRecord(c, recAlert, []byte{2, 47})
			return errors.New("cookie not echoed")
		}
		transcript.Write(raw)
	}
	peer, err := echoCurve(group).NewPublicKey(ch.shares[group])
	if err != nil {
		_ = echoRecord(c, recAlert, []byte{2, 47})
		return fmt.Errorf("client share: %w", err)
	}
	priv, err := echoCurve(group).GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return err
	}
	ks := append([]byte{byte(group >> 8), byte(group)}, withLen16(priv.PublicKey().Bytes())...)
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	sh := s.serverHello(random, ch.sessionID, suite,
		tlsExtBytes(extSupportedVers, []byte{3, 4}),
		tlsExtBytes(extKeyShare, ks))
	transcript.Write(sh)

	hl := st.hash().Size()
	zero := make([]byte, hl)
	early, _ := hkdf.Extract(st.hash, zero, zero)
	empty := st.hash().Sum(nil)
	hsSecret, _ := hkdf.Extract(st.hash, shared, expandLabel(st.hash, early, "derived", empty, hl))
	serverHS := expandLabel(st.hash, hsSecret, "s hs traffic", transcript.Sum(nil), hl)
	enc, err := newTLS13Decrypter(suite, serverHS)
	if err != nil {
		return err
	}

	// EncryptedExtensions in the client's order (NSS's habit).
	var ee [][]byte
	for _, id := range ch.order {
		switch id {
		case extServerName:
			ee = append(ee, tlsExtBytes(extServerName, nil))
		case extGroups:
			ee = append(ee, tlsExtBytes(extGroups, withLen16([]byte{0, 29, 0, 23, 0, 24})))
		case extRecordSizeLimit:
			ee = append(ee, tlsExtBytes(extRecordSizeLimit, []byte{0x40, 0x01}))
		case extALPN:
			proto := s.forceALPN
			if proto == "" {
				for _, p := range ch.alpn {
					if p == "h2" || p == "http/1.1" {
						proto = p
						break
					}
				}
			}
			if proto != "" {
				ee = append(ee, tlsExtBytes(extALPN, withLen16(append([]byte{byte(len(proto))}, proto...))))
			}
		}
	}
	var leafExts [][]byte
	if s.leafExts {
		for _, id := range ch.order {
			switch id {
			case extStatusRequest:
				leafExts = append(leafExts, tlsExtBytes(extStatusRequest, append([]byte{1, 0, 0, 4}, "ocsp"...)))
			case extSCT:
				leafExts = append(leafExts, tlsExtBytes(extSCT, withLen16(withLen16([]byte("sct")))))
			}
		}
	}
	entry := append([]byte{0, byte(len(s.cert) >> 8), byte(len(s.cert))}, s.cert...)
	entry = append(entry, withLen16(bytes.Join(leafExts, nil))...)
	certMsg := handshakeMsg(hsCertificate, append([]byte{0, 0, byte(len(entry) >> 8), byte(len(entry))}, entry...))
	eeMsg := handshakeMsg(hsEncryptedExts, withLen16(bytes.Join(ee, nil)))
	transcript.Write(eeMsg)
	transcript.Write(certMsg)
	signed := append(bytes.Repeat([]byte{0x20}, 64), "TLS 1.3, server CertificateVerify\x00"...)
	signed = append(signed, transcript.Sum(nil)...)
	sig := ed25519.Sign(s.key, signed)
	cvMsg := handshakeMsg(15, append([]byte{8, 7}, withLen16(sig)...))
	transcript.Write(cvMsg)
	mac := hmac.New(st.hash, expandLabel(st.hash, serverHS, "finished", nil, hl))
	mac.Write(transcript.Sum(nil))
	finMsg := handshakeMsg(hsFinished, mac.Sum(nil))

	if err := echoRecord(c, recHandshake, sh); err != nil {
		return err
	}
	for _, m := range [][]byte{eeMsg, certMsg, cvMsg, finMsg} {
		rec := enc.seal(recHandshake, m)
		if err := echoRecord(c, rec.typ, rec.body); err != nil {
			return err
		}
	}
	// Wait for the client's flight or its close; its content is not checked.
	_, _ = io.Copy(io.Discard, c)
	return nil
}

func (s *echoServer) serverHello(random, sid []byte, suite uint16, exts ...[]byte) []byte {
	b := []byte{3, 3}
	b = append(b, random...)
	b = append(b, byte(len(sid)))
	b = append(b, sid...)
	b = append(b, byte(suite>>8), byte(suite), 0)
	b = append(b, withLen16(bytes.Join(exts, nil))...)
	return handshakeMsg(hsServerHello, b)
}

// start serves s on ip until the test ends.
func (s *echoServer) start(t testing.TB, ip string) net.Addr {
	t.Helper()
	ap := serveLoopback(t, ip, func(c net.Conn) {
		if err := s.serve(c); err != nil && !errors.Is(err, errAlerted) {
			t.Logf("echo server: %v", err)
		}
	})
	return net.TCPAddrFromAddrPort(ap)
}
