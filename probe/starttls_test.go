package probe

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// The STARTTLS servers below speak each protocol's real dialogue (texts as
// Postfix, Dovecot, vsftpd, Prosody, OpenLDAP and PostgreSQL send them)
// and then hand the connection to crypto/tls. Each one is checked against
// `openssl s_client -starttls` first, an independent client, so the
// prober is not only tested against servers shaped after itself.

// starttlsServe performs the server side of proto's upgrade on c; ok false
// means the client gave up or the server refused (refuse set).
func starttlsServe(c net.Conn, br *bufio.Reader, proto string, refuse bool) bool {
	line := func() (string, bool) {
		s, err := br.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err == nil
	}
	say := func(s string) { _, _ = io.WriteString(c, s) }
	switch proto {
	case stackprint.StartTLSSMTP:
		say("220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n")
		for {
			l, ok := line()
			if !ok {
				return false
			}
			cmd := strings.ToUpper(strings.Fields(l + " x")[0])
			switch {
			case cmd == "EHLO" && refuse:
				say("250-mail.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			case cmd == "EHLO":
				say("250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n")
			case cmd == "HELO":
				say("250 mail.example.test\r\n")
			case cmd == "STARTTLS" && refuse:
				say("502 5.5.1 Error: command not implemented\r\n")
			case cmd == "STARTTLS":
				say("220 2.0.0 Ready to start TLS\r\n")
				return true
			case cmd == "QUIT":
				say("221 2.0.0 Bye\r\n")
				return false
			default:
				say("502 5.5.2 Error: command not recognized\r\n")
			}
		}
	case stackprint.StartTLSIMAP:
		say("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n")
		for {
			l, ok := line()
			if !ok {
				return false
			}
			f := strings.Fields(l + " x x")
			switch strings.ToUpper(f[1]) {
			case "CAPABILITY":
				say("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED\r\n" + f[0] + " OK Pre-login capabilities listed, post-login capabilities have more.\r\n")
			case "STARTTLS":
				say(f[0] + " OK Begin TLS negotiation now.\r\n")
				return true
			case "LOGOUT":
				say("* BYE Logging out\r\n" + f[0] + " OK Logout completed.\r\n")
				return false
			default:
				say(f[0] + " BAD Error in IMAP command received by server.\r\n")
			}
		}
	case stackprint.StartTLSPOP3:
		say("+OK Dovecot (Debian) ready.\r\n")
		for {
			l, ok := line()
			if !ok {
				return false
			}
			switch strings.ToUpper(strings.Fields(l + " x")[0]) {
			case "CAPA":
				say("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
			case "STLS":
				say("+OK Begin TLS negotiation now.\r\n")
				return true
			default:
				say("-ERR Unknown command.\r\n")
			}
		}
	case stackprint.StartTLSFTP:
		say("220 (vsFTPd 3.0.3)\r\n")
		for {
			l, ok := line()
			if !ok {
				return false
			}
			switch strings.ToUpper(l) {
			case "AUTH TLS", "AUTH SSL":
				say("234 Proceed with negotiation.\r\n")
				return true
			case "FEAT":
				say("211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n UTF8\r\n211 End\r\n")
			default:
				say("530 Please login with USER and PASS.\r\n")
			}
		}
	case stackprint.StartTLSXMPPClient, stackprint.StartTLSXMPPServer:
		// The client's stream header, possibly after an XML declaration.
		var hdr []byte
		for !bytes.Contains(hdr, []byte("<stream:stream")) || !bytes.HasSuffix(hdr, []byte(">")) {
			b, err := br.ReadByte()
			if err != nil {
				return false
			}
			hdr = append(hdr, b)
		}
		ns := "jabber:client"
		if proto == stackprint.StartTLSXMPPServer {
			ns = "jabber:server"
		}
		say("<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='http://etherx.jabber.org/streams' id='4a0c8e3b' from='example.test' version='1.0' xml:lang='en'>" +
			"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>")
		var req []byte
		for !bytes.HasSuffix(req, []byte("/>")) {
			b, err := br.ReadByte()
			if err != nil {
				return false
			}
			req = append(req, b)
		}
		if !bytes.Contains(req, []byte("<starttls")) {
			return false
		}
		say("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		return true
	case stackprint.StartTLSLDAP:
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 0x30 || hdr[1]&0x80 != 0 {
			return false
		}
		msg := make([]byte, hdr[1])
		if _, err := io.ReadFull(br, msg); err != nil || !bytes.Contains(msg, []byte(ldapStartTLSOID)) {
			return false
		}
		// ExtendedResponse: success, empty matchedDN and diagnostic, the
		// StartTLS responseName (as OpenLDAP sends it).
		resp := append([]byte{0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00, 0x8a, byte(len(ldapStartTLSOID))}, ldapStartTLSOID...)
		resp = append([]byte{0x78, byte(len(resp))}, resp...)
		resp = append([]byte{0x02, 0x01, msg[2]}, resp...)
		_, _ = c.Write(append([]byte{0x30, byte(len(resp))}, resp...))
		return true
	case stackprint.StartTLSPostgres:
		req := make([]byte, 8)
		if _, err := io.ReadFull(br, req); err != nil || !bytes.Equal(req, []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}) {
			return false
		}
		_, _ = c.Write([]byte{'S'})
		return true
	}
	return false
}

// startSTARTTLS serves proto on ip with cfg after the upgrade.
func startSTARTTLS(t testing.TB, ip, proto string, cfg *tls.Config, refuse bool) netip.AddrPort {
	t.Helper()
	return serveLoopback(t, ip, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if !starttlsServe(c, br, proto, refuse) || br.Buffered() > 0 {
			return
		}
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		_, _ = io.Copy(io.Discard, tc)
	})
}

// opensslStartTLS is the openssl s_client name of proto.
func opensslStartTLS(proto string) string {
	switch proto {
	case stackprint.StartTLSXMPPClient:
		return "xmpp"
	case stackprint.StartTLSXMPPServer:
		return "xmpp-server"
	}
	return proto
}

func TestSTARTTLSServices(t *testing.T) {
	bin := opensslBin(t)
	cfg := tlsConfigECDSA(t)
	for i, proto := range stackprint.StartTLSProtocols() {
		t.Run(proto, func(t *testing.T) {
			ap := startSTARTTLS(t, "127.0.1."+strconv.Itoa(80+i), proto, cfg, false)

			// The server is faithful: openssl's own STARTTLS client gets a
			// TLS session out of it.
			args := []string{"s_client", "-brief", "-starttls", opensslStartTLS(proto), "-connect", ap.String()}
			if strings.HasPrefix(proto, "xmpp") {
				args = append(args, "-xmpphost", "example.test")
			}
			cmd := exec.Command(bin, args...)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "CONNECTION ESTABLISHED") {
				t.Fatalf("openssl s_client -starttls %s: %v\n%s", opensslStartTLS(proto), err, out)
			}

			// By port (configured), every kind upgrades first.
			e, err := NewEngine(EngineConfig{IOTimeout: 5 * time.Second, StartTLSPorts: map[uint16]string{ap.Port(): proto}})
			if err != nil {
				t.Fatal(err)
			}
			res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), SNI: "example.test"}, ap.Addr().String())
			checkEngineInvariants(t, res, 4)
			for _, k := range res.Kinds {
				t.Logf("%s: %s conns=%d %q", k.Kind, k.Status, k.Conns, k.Error)
			}
			if res.Status != stackprint.StatusOK || res.StartTLS != proto || !res.HasJARM() || !res.HasATSF() || res.Cert == nil {
				t.Fatalf("status %s starttls %q error %q", res.Status, res.StartTLS, res.Error)
			}

			// By the sensor's word on a port the engine does not map.
			e2, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindCert}, IOTimeout: 5 * time.Second, StartTLSPorts: map[uint16]string{}})
			if err != nil {
				t.Fatal(err)
			}
			res2 := e2.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port(), StartTLS: proto}, "")
			if res2.Status != stackprint.StatusOK || res2.StartTLS != proto || res2.Cert.SHA256 != res.Cert.SHA256 {
				t.Errorf("with the sensor's hint: %s %q %q", res2.Status, res2.StartTLS, res2.Error)
			}
		})
	}
}

// TestSTARTTLSRefused: a mail server without STARTTLS, or something else
// on a mail port, is not_tls for every kind, at once.
func TestSTARTTLSRefused(t *testing.T) {
	cfg := tlsConfigECDSA(t)
	plain := startSTARTTLS(t, "127.0.1.90", stackprint.StartTLSSMTP, cfg, true)
	other := serveLoopback(t, "127.0.1.91", func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
	})
	for _, ap := range []netip.AddrPort{plain, other} {
		e, err := NewEngine(EngineConfig{IOTimeout: 5 * time.Second, StartTLSPorts: map[uint16]string{ap.Port(): stackprint.StartTLSSMTP}})
		if err != nil {
			t.Fatal(err)
		}
		res := e.Probe(testCtx(t), stackprint.Target{IP: ap.Addr(), Port: ap.Port()}, "")
		checkEngineInvariants(t, res, 4)
		if res.Status != stackprint.StatusNotTLS || res.StartTLS != stackprint.StartTLSSMTP || !strings.Contains(res.Error, "starttls smtp") {
			t.Errorf("%s: status %s starttls %q error %q", ap, res.Status, res.StartTLS, res.Error)
		}
		if res.Duration > 4*time.Second {
			t.Errorf("%s: refusal took %v", ap, res.Duration)
		}
	}
	if _, err := NewEngine(EngineConfig{StartTLSPorts: map[uint16]string{25: "smtps"}}); err == nil {
		t.Error("unknown STARTTLS protocol accepted")
	}
}
