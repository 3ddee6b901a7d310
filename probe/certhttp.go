package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// HTTP limits: the response head is read through a cap, the Server value
// is cut.
const (
	httpHeadCap   = 16 << 10
	maxServerLen  = 256
	httpUserAgent = "stackprint (TLS server fingerprinting)"
)

// allCipherSuites offers every suite crypto/tls implements, insecure ones
// included: the goal is to see the certificate of old servers too, not to
// protect data.
func allCipherSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// runCertHTTP makes one ordinary TLS handshake (crypto/tls, certificate not
// verified) to learn the leaf certificate and, when wanted, sends GET /
// over the same connection for the Server header. The chain is taken from
// the records themselves (TLS 1.3: decrypted with the logged handshake
// secret), so a certificate crypto/x509 refuses, or a handshake that fails
// after the Certificate message, still yields the hashes.
func (e *Engine) runCertHTTP(ctx context.Context, d *targetDialer, network, addr string, t stackprint.Target, wantCert, wantHTTP bool) (cert *stackprint.CertFacts, hf *stackprint.HTTPFacts, certKR, httpKR stackprint.KindResult) {
	certKR = stackprint.KindResult{Kind: stackprint.KindCert}
	httpKR = stackprint.KindResult{Kind: stackprint.KindHTTP}
	fail := func(st stackprint.Status, msg string) {
		certKR.Status, certKR.Error = st, "cert: "+msg
		httpKR.Status, httpKR.Error = st, "http: "+msg
	}
	defer func() {
		if r := recover(); r != nil {
			cert, hf = nil, nil
			fail(stackprint.StatusHandshakeError, fmt.Sprintf("internal error: %v", r))
		}
	}()
	conn, st, err := e.dial(ctx, d, network, addr)
	if err != nil {
		fail(st, err.Error())
		return
	}
	defer conn.Close()
	rc := newRecordConn(ctx, conn, e.ioTimeout, e.readCap)
	br := e.readBuffer(conn)
	defer e.putReadBuffer(br)
	rc.src = br
	var kl keyLog
	cfg := &tls.Config{
		ServerName:         t.SNI, // "" sends no SNI: an IP literal is never a server name
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       e.certSuites,
		// Go's default groups less the post-quantum hybrids: the
		// certificate and the HTTP answer are the same whatever the key
		// exchange, and an ML-KEM key pair per connection (and the
		// server's encapsulation) cost more than the rest of the
		// handshake's key exchange.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521},
		KeyLogWriter:     &kl,
	}
	// No ALPN: HTTP/1.1 is what a server assumes without it, and a server
	// that answers with a protocol the client did not offer (Botan does)
	// would make crypto/tls abort before the Certificate.
	tc := tls.Client(rc, cfg)
	herr := handshake(ctx, conn, tc.HandshakeContext)
	tr := parseTranscript(rc.records, kl.secret(serverHSLabel))
	failStatus := func() stackprint.Status { return classify(ctx, rc.err, herr) }

	if wantCert {
		if tr.chainLen > 0 && len(tr.chain[0]) > 0 {
			var parsed *x509.Certificate
			if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
				parsed = pc[0]
			}
			cert = certFactsParsed(tr.chain[0], tr.chainLen, parsed)
			certKR.Status = stackprint.StatusOK
		} else {
			certKR.Status = stackprint.StatusHandshakeError
			if herr != nil {
				certKR.Status = failStatus()
			}
			certKR.Error = certError(tr, herr)
		}
	}
	if !wantHTTP {
		return
	}
	if herr != nil {
		httpKR.Status, httpKR.Error = failStatus(), "http: handshake failed: "+shortError(herr)
		return
	}
	// The answer's head must come within the HTTP wait: a TLS service that
	// is no web server (IMAPS, a C2 channel) stays silent or answers
	// something else, and costs no more than that.
	rc.limit = time.Now().Add(e.httpWait)
	hf, err = getHead(tc, httpHost(t))
	if err != nil {
		httpKR.Status, httpKR.Error = classify(ctx, rc.err, err), "http: "+shortError(err)
		return
	}
	httpKR.Status = stackprint.StatusOK
	_ = tc.Close()
	return
}

// httpHost is the Host header: the SNI, else the IP literal, with the port
// unless it is 443.
func httpHost(t stackprint.Target) string {
	host := t.SNI
	if host == "" {
		ip := t.IP.Unmap().WithZone("")
		host = ip.String()
		if ip.Is6() && t.Port == 443 {
			host = "[" + host + "]"
		}
	}
	if t.Port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(int(t.Port)))
	}
	return host
}

// getHead sends GET / and reads the status line and headers only, at most
// httpHeadCap bytes; the body is never read. GET rather than HEAD because
// some servers (openssl s_server -www) ignore HEAD and never answer.
func getHead(c net.Conn, host string) (*stackprint.HTTPFacts, error) {
	req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + httpUserAgent + "\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, fmt.Errorf("send GET: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(io.LimitReader(c, httpHeadCap), 4096), &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("read HTTP answer: %w", err)
	}
	// Not resp.Body.Close: that would read the body to its end.
	server := strings.TrimSpace(resp.Header.Get("Server"))
	if len(server) > maxServerLen {
		server = server[:maxServerLen]
	}
	return &stackprint.HTTPFacts{StatusCode: resp.StatusCode, Server: strings.ToValidUTF8(server, "\uFFFD")}, nil
}
