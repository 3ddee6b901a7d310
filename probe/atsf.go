package probe

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/stackprint/stackprint"
)

// atsfOutcome is what one ClientHello produced.
type atsfOutcome struct {
	hello  stackprint.ATSFHello
	status stackprint.Status // failure class when hello.Raw == ""; "" otherwise
}

// runATSF sends the ten ClientHellos one after the other, one connection
// each. It stops early once the combined fingerprint has become impossible
// and waiting for more would be pointless or impolite: a connect failure,
// a timeout or a non-TLS answer. The returned ATSF always lists all ten
// names; unsent ones carry an Error.
func (e *Engine) runATSF(ctx context.Context, d *targetDialer, network, addr, sni string) (*stackprint.ATSF, stackprint.KindResult) {
	kr := stackprint.KindResult{Kind: stackprint.KindATSF}
	a := &stackprint.ATSF{Hellos: make([]stackprint.ATSFHello, len(e.atsfDefs))}
	raws := make([]string, len(e.atsfDefs))
	answered := 0
	var firstFail stackprint.Status
	var firstErr string
	stopped := ""
	var tgt atsfTarget
	for i, def := range e.atsfDefs {
		a.Hellos[i].Name = def.Name
		if stopped != "" {
			a.Hellos[i].Error = "not sent: " + stopped
			continue
		}
		if err := ctxDone(ctx); err != nil {
			stopped = "target deadline reached"
			a.Hellos[i].Error = "not sent: " + stopped
			if firstFail == "" {
				firstFail, firstErr = stackprint.StatusTimeout, fmt.Sprintf("%s: %v", def.Name, err)
			}
			continue
		}
		if tgt.x25519 == nil && def.realShares() > 0 {
			// On failure utls makes its own per connection.
			tgt.x25519, _ = ecdh.X25519().GenerateKey(rand.Reader)
		}
		o := e.atsfHello(ctx, d, network, addr, def, sni, &tgt)
		a.Hellos[i] = o.hello
		raws[i] = o.hello.Raw
		if o.hello.Raw != "" {
			answered++
			continue
		}
		if firstFail == "" {
			firstFail, firstErr = o.status, def.Name+": "+o.hello.Error
		}
		switch o.status {
		case stackprint.StatusRefused, stackprint.StatusTimeout, stackprint.StatusNotTLS, stackprint.StatusBudgetExceeded:
			stopped = fmt.Sprintf("%s after %s", o.status, def.Name)
		}
	}
	a.Fingerprint, a.ID = CombineATSF(raws)
	switch {
	case a.ID != "":
		kr.Status = stackprint.StatusOK
	case answered > 0:
		kr.Status = stackprint.StatusPartial
		kr.Error = fmt.Sprintf("atsf: %d of %d ClientHellos answered; %s", answered, len(raws), firstErr)
	default:
		kr.Status = firstFail
		kr.Error = "atsf: no answer: " + firstErr
	}
	return a, kr
}

// atsfTarget is what the ClientHellos to one target share.
type atsfTarget struct {
	// x25519 is the key pair of every real X25519 share (docs/ATSF.md
	// §1.2): a scanner keeps no secret, and no answer depends on the
	// share's value. Made when first needed.
	x25519 *ecdh.PrivateKey
	leaf   leafCache // the server's leaf, parsed once
}

// atsfHello runs one ClientHello to the point where utls stops and
// extracts the features of what the server sent until then.
func (e *Engine) atsfHello(ctx context.Context, d *targetDialer, network, addr string, def *atsfDef, sni string, tgt *atsfTarget) (o atsfOutcome) {
	o.hello.Name = def.Name
	defer func() {
		// utls must not take the daemon down on a hostile answer.
		if r := recover(); r != nil {
			o.hello.Raw, o.status = "", stackprint.StatusHandshakeError
			o.hello.Error = fmt.Sprintf("internal error: %v", r)
		}
	}()
	conn, st, err := e.dial(ctx, d, network, addr)
	if err != nil {
		o.status, o.hello.Error = st, err.Error()
		return o
	}
	defer conn.Close()
	rc := newRecordConn(ctx, conn, e.ioTimeout, e.readCap)
	rc.firstVersion = min(def.Version, 0x0303) // the reference caps the record version
	var kl keyLog
	ac, err := atsfUConn(rc, def, sni, &kl, e.dummyKey, tgt.x25519)
	if err != nil {
		o.status, o.hello.Error = stackprint.StatusHandshakeError, err.Error()
		return o
	}
	uc := ac.uc
	alpnDone := ac.alpn == nil
	// One walk over the records serves every decision below and the
	// features: each record is parsed (and decrypted) once.
	scan := newTranscriptScan()
	rc.onRecord = func(r tlsRecord) {
		// Runs inside utls's read, before utls parses the record.
		if hrrHasCookie(r) {
			// The second hello must be in the reference's order when
			// utls builds it.
			ac.orderForCookie()
		}
		if alpnDone || (r.typ != recHandshake && r.typ != recApplication) {
			return
		}
		// The TLS 1.3 handshake secret is logged before utls reads
		// EncryptedExtensions, so that record decrypts here already.
		if proto, decided := scan.scan(rc.records, kl.secret(serverHSLabel)).serverALPN(); decided {
			alpnDone = true
			ac.acceptALPN(proto)
		}
	}
	if e.atsfBaseline {
		rc.src = conn
	} else {
		br := e.readBuffer(conn)
		defer e.putReadBuffer(br)
		rc.src = br
		goOn := false // the handshake must run to its end
		rc.ahead = func() (complete, more bool) {
			if goOn {
				return false, false
			}
			secret := kl.secret(serverHSLabel)
			// utls has taken the ServerHello (TLS 1.3: it logged the
			// secret), so a cipher it refuses has been refused.
			t := scan.scan(rc.records, secret)
			shDone := secret != nil || scan.shIn(rc.delivered)
			complete, more = t.flightState(secret != nil, shDone)
			if complete && !t.tls13 && !tls12Completes(t, def, rc.clientRandom, &tgt.leaf) {
				goOn, complete = true, false
			}
			return complete, more
		}
	}
	herr := handshake(ctx, conn, uc.HandshakeContext)
	tr := scan.scan(rc.records, kl.secret(serverHSLabel))
	o.hello.Raw = tr.atsfString()
	if herr == nil {
		o.hello.Version = uc.ConnectionState().Version
		_ = uc.Close() // close_notify, as a polite client does
		return o
	}
	if rc.err == errFlightComplete {
		// The server's whole first flight is read and holds no
		// CertificateRequest: the rest of the handshake (certificate
		// parsing, signature checks, the client's key exchange and
		// Finished) changes no feature. The connection just closes.
		o.hello.Version = tr.negotiated
		e.atsfCut.Add(1)
		return o
	}
	o.hello.Error = shortError(herr)
	if tr.undecrypted {
		o.hello.Error += " (encrypted handshake not decrypted)"
	}
	if o.hello.Raw == "" {
		o.status = classify(ctx, rc.err, herr)
	}
	return o
}

// readBuffer is a read buffer of readBufSize on conn from the engine's pool.
func (e *Engine) readBuffer(conn net.Conn) *bufio.Reader {
	br, _ := e.readBufs.Get().(*bufio.Reader)
	if br == nil {
		return bufio.NewReaderSize(conn, readBufSize)
	}
	br.Reset(conn)
	return br
}

// putReadBuffer returns br to the pool; the connection is not read again.
func (e *Engine) putReadBuffer(br *bufio.Reader) {
	br.Reset(nil)
	e.readBufs.Put(br)
}

// hrrHasCookie reports whether r carries a HelloRetryRequest with a
// cookie extension (only a HelloRetryRequest within one record is seen).
func hrrHasCookie(r tlsRecord) bool {
	if r.typ != recHandshake || len(r.body) < 4 || r.body[0] != hsServerHello {
		return false
	}
	n := int(r.body[1])<<16 | int(r.body[2])<<8 | int(r.body[3])
	if len(r.body) < 4+n {
		return false
	}
	t := &transcript{}
	t.serverHello(r.body[4 : 4+n])
	return t.hrr.seen && slices.ContainsFunc(t.hrr.exts, func(e tlsExt) bool { return e.typ == extCookie })
}

// shortError trims an error to one line of bounded length.
func shortError(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
