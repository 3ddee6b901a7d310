package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// STARTTLS limits: greetings, capability lists and stream features are
// short; a server that talks more is not the service it claims to be.
const (
	starttlsMaxLine  = 4 << 10
	starttlsMaxBytes = 64 << 10
	// ldapStartTLSOID is the StartTLS extended operation (RFC 4511 §4.14).
	ldapStartTLSOID = "1.3.6.1.4.1.1466.20037"
	// starttlsClientName is what the client calls itself (EHLO): a name
	// that can never resolve (RFC 2606).
	starttlsClientName = "stackprint.invalid"
)

// DefaultStartTLSPorts maps the standard ports of the STARTTLS services to
// their protocol.
func DefaultStartTLSPorts() map[uint16]string {
	return map[uint16]string{
		21:   stackprint.StartTLSFTP,
		25:   stackprint.StartTLSSMTP,
		110:  stackprint.StartTLSPOP3,
		143:  stackprint.StartTLSIMAP,
		389:  stackprint.StartTLSLDAP,
		587:  stackprint.StartTLSSMTP,
		5222: stackprint.StartTLSXMPPClient,
		5269: stackprint.StartTLSXMPPServer,
		5432: stackprint.StartTLSPostgres,
	}
}

// errStartTLS marks a service that did not agree to the upgrade; it wraps
// errNotTLS, so the kinds report not_tls.
var errStartTLS = fmt.Errorf("%w: STARTTLS refused", errNotTLS)

// starttlsDialer connects and then performs the protocol's STARTTLS
// exchange, so every kind sends its ClientHello on an upgraded connection.
type starttlsDialer struct {
	base    Dialer
	proto   string // stackprint.StartTLS*
	host    string // server name for XMPP's "to" (SNI, else the IP)
	timeout time.Duration
}

func (d *starttlsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.base.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	dl := time.Now().Add(d.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(dl) {
		dl = cd
	}
	if err := c.SetDeadline(dl); err != nil {
		c.Close()
		return nil, fmt.Errorf("starttls %s: %w", d.proto, err)
	}
	// Unblock the exchange as soon as ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	err = startTLS(c, d.proto, d.host)
	if !stop() && err != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("starttls %s: %w", d.proto, err)
	}
	return c, nil
}

// startTLS runs the client side of proto's upgrade on c. It reads one
// byte at a time, so nothing the server sends after its go-ahead (there
// should be nothing) is swallowed.
func startTLS(c net.Conn, proto, host string) error {
	r := &exactReader{r: c, left: starttlsMaxBytes}
	send := func(s string) error {
		if _, err := io.WriteString(c, s); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return nil
	}
	switch proto {
	case stackprint.StartTLSSMTP:
		if err := expectReply(r, "220"); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if err := send("EHLO " + starttlsClientName + "\r\n"); err != nil {
			return err
		}
		if err := expectReply(r, "250"); err != nil {
			return fmt.Errorf("EHLO: %w", err)
		}
		if err := send("STARTTLS\r\n"); err != nil {
			return err
		}
		return expectReply(r, "220")
	case stackprint.StartTLSFTP:
		if err := expectReply(r, "220"); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if err := send("AUTH TLS\r\n"); err != nil {
			return err
		}
		return expectReply(r, "234")
	case stackprint.StartTLSPOP3:
		if err := expectPOP3(r); err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if err := send("STLS\r\n"); err != nil {
			return err
		}
		return expectPOP3(r)
	case stackprint.StartTLSIMAP:
		line, err := r.line()
		if err != nil {
			return fmt.Errorf("greeting: %w", err)
		}
		if !hasPrefixFold(line, "* OK") {
			return fmt.Errorf("%w: greeting %q", errStartTLS, clip(line))
		}
		if err := send("a1 STARTTLS\r\n"); err != nil {
			return err
		}
		for {
			line, err := r.line()
			if err != nil {
				return err
			}
			switch {
			case hasPrefixFold(line, "a1 OK"):
				return nil
			case hasPrefixFold(line, "a1 "):
				return fmt.Errorf("%w: %q", errStartTLS, clip(line))
			case strings.HasPrefix(line, "* "):
				// untagged data before the tagged answer
			default:
				return fmt.Errorf("%w: unexpected %q", errStartTLS, clip(line))
			}
		}
	case stackprint.StartTLSXMPPClient, stackprint.StartTLSXMPPServer:
		ns := "jabber:client"
		if proto == stackprint.StartTLSXMPPServer {
			ns = "jabber:server"
		}
		if err := send("<?xml version='1.0'?><stream:stream to='" + xmlAttr(host) + "' xmlns='" + ns +
			"' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"); err != nil {
			return err
		}
		features, err := r.until("</stream:features>")
		if err != nil {
			return fmt.Errorf("stream features: %w", err)
		}
		if !strings.Contains(features, "urn:ietf:params:xml:ns:xmpp-tls") {
			return fmt.Errorf("%w: no starttls in the stream features", errStartTLS)
		}
		if err := send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			return err
		}
		answer, err := r.until(">")
		if err != nil {
			return err
		}
		if !strings.Contains(answer, "<proceed") {
			return fmt.Errorf("%w: %q", errStartTLS, clip(answer))
		}
		return nil
	case stackprint.StartTLSLDAP:
		// LDAPMessage{messageID 1, ExtendedRequest{requestName OID}}.
		oid := ldapStartTLSOID
		req := append([]byte{0x80, byte(len(oid))}, oid...)
		req = append([]byte{0x77, byte(len(req))}, req...)
		req = append([]byte{0x02, 0x01, 0x01}, req...)
		req = append([]byte{0x30, byte(len(req))}, req...)
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return readLDAPExtendedResponse(r)
	case stackprint.StartTLSPostgres:
		// SSLRequest: length 8, code 80877103.
		if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		b, err := r.byte()
		if err != nil {
			return err
		}
		if b != 'S' {
			return fmt.Errorf("%w: SSLRequest answered %q", errStartTLS, b)
		}
		return nil
	}
	return fmt.Errorf("unknown STARTTLS protocol %q", proto)
}

// exactReader reads one byte per call, within a byte budget.
type exactReader struct {
	r    io.Reader
	left int
}

func (r *exactReader) byte() (byte, error) {
	if r.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes before the upgrade", errStartTLS, starttlsMaxBytes)
	}
	var b [1]byte
	if _, err := io.ReadFull(r.r, b[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: connection closed", errStartTLS)
		}
		return 0, err
	}
	r.left--
	return b[0], nil
}

// line reads one CRLF- or LF-terminated line without the terminator.
func (r *exactReader) line() (string, error) {
	var b []byte
	for {
		c, err := r.byte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			return string(bytes.TrimSuffix(b, []byte{'\r'})), nil
		}
		if len(b) >= starttlsMaxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", errStartTLS, starttlsMaxLine)
		}
		if len(b) == 0 && c == 0x16 {
			return "", fmt.Errorf("%w: the server speaks TLS at once (implicit TLS port?)", errStartTLS)
		}
		b = append(b, c)
	}
}

// until reads up to and including the first occurrence of end.
func (r *exactReader) until(end string) (string, error) {
	var b []byte
	for !bytes.HasSuffix(b, []byte(end)) {
		c, err := r.byte()
		if err != nil {
			return "", err
		}
		b = append(b, c)
	}
	return string(b), nil
}

// expectReply reads an SMTP/FTP reply (continuation lines "NNN-") and
// requires code.
func expectReply(r *exactReader, code string) error {
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		if len(line) < 3 || !isDigits(line[:3]) {
			return fmt.Errorf("%w: not a reply: %q", errStartTLS, clip(line))
		}
		if len(line) > 3 && line[3] == '-' {
			continue
		}
		if line[:3] != code {
			return fmt.Errorf("%w: %q (want %s)", errStartTLS, clip(line), code)
		}
		return nil
	}
}

func expectPOP3(r *exactReader) error {
	line, err := r.line()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("%w: %q", errStartTLS, clip(line))
	}
	return nil
}

// readLDAPExtendedResponse reads the LDAPMessage answering the StartTLS
// request and requires resultCode success (0).
func readLDAPExtendedResponse(r *exactReader) error {
	tag, body, err := readBER(r)
	if err != nil {
		return err
	}
	if tag != 0x30 {
		return fmt.Errorf("%w: LDAP answer tag %#x", errStartTLS, tag)
	}
	s := byteString(body)
	// messageID INTEGER, then protocolOp [APPLICATION 24] ExtendedResponse.
	if t, ok := s.u8(); !ok || t != 0x02 {
		return fmt.Errorf("%w: LDAP answer without messageID", errStartTLS)
	}
	if _, ok := s.vec8(); !ok {
		return fmt.Errorf("%w: LDAP messageID truncated", errStartTLS)
	}
	if t, ok := s.u8(); !ok || t != 0x78 {
		return fmt.Errorf("%w: LDAP answer is not an ExtendedResponse", errStartTLS)
	}
	if _, ok := berLen(&s); !ok {
		return fmt.Errorf("%w: LDAP ExtendedResponse truncated", errStartTLS)
	}
	if t, ok := s.u8(); !ok || t != 0x0a {
		return fmt.Errorf("%w: LDAP resultCode missing", errStartTLS)
	}
	code, ok := s.vec8()
	if !ok || len(code) == 0 {
		return fmt.Errorf("%w: LDAP resultCode truncated", errStartTLS)
	}
	if v := int(code[len(code)-1]); len(code) != 1 || v != 0 {
		return fmt.Errorf("%w: LDAP resultCode %d", errStartTLS, v)
	}
	return nil
}

// readBER reads one BER element (definite length, at most 64 KiB).
func readBER(r *exactReader) (byte, []byte, error) {
	tag, err := r.byte()
	if err != nil {
		return 0, nil, err
	}
	l, err := r.byte()
	if err != nil {
		return 0, nil, err
	}
	n := int(l)
	if l&0x80 != 0 {
		k := int(l & 0x7f)
		if k == 0 || k > 2 {
			return 0, nil, fmt.Errorf("%w: BER length form %#x", errStartTLS, l)
		}
		n = 0
		for range k {
			b, err := r.byte()
			if err != nil {
				return 0, nil, err
			}
			n = n<<8 | int(b)
		}
	}
	body := make([]byte, n)
	for i := range body {
		if body[i], err = r.byte(); err != nil {
			return 0, nil, err
		}
	}
	return tag, body, nil
}

// berLen skips a BER length in s and returns it.
func berLen(s *byteString) (int, bool) {
	l, ok := s.u8()
	if !ok {
		return 0, false
	}
	if l&0x80 == 0 {
		return int(l), true
	}
	b, ok := s.take(int(l & 0x7f))
	if !ok || len(b) > 2 {
		return 0, false
	}
	n := 0
	for _, x := range b {
		n = n<<8 | int(x)
	}
	return n, true
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// xmlAttr escapes s for a single-quoted XML attribute.
func xmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&apos;", "<", "&lt;", ">", "&gt;").Replace(s)
}
