package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// TLS record limits.
const (
	recordHeaderLen = 5
	// maxRecordBody is the largest record body any TLS version allows
	// (TLS 1.2 ciphertext: 2^14 + 2048). A header announcing more is an
	// answer no TLS stack sends; it is refused before a byte of it is read.
	maxRecordBody = 16384 + 2048
	// DefaultReadCap bounds what one connection may make the prober read
	// (ATSF, certificate and HTTP connections): a full handshake flight
	// with a large chain fits many times over.
	DefaultReadCap = 256 << 10
)

// Errors a recordConn returns; the status mapping keys on them.
var (
	errNotTLS        = errors.New("answer is not TLS")
	errRecordTooBig  = errors.New("record larger than TLS allows")
	errReadCapHit    = errors.New("read cap reached")
	errUnexpectedEOF = errors.New("connection closed inside a record")
)

// tlsRecord is one record as the client consumed it.
type tlsRecord struct {
	typ  uint8
	vers uint16
	body []byte
}

// recordConn hands the TLS client on top of it exactly one record per
// Read and parses a record only when the client asks for one (or ahead
// does, within the server's flight), so the log holds exactly what the
// client processed: a record the client never asked for (an alert after
// the point where it gave up) is never recorded. It also enforces the
// per-I/O timeout (capped by ctx's deadline), the record size limit and
// the per-connection read cap, and can rewrite the record-layer version of
// the first record written (utls always writes 0x0301 there).
type recordConn struct {
	net.Conn
	ctx       context.Context
	ioTimeout time.Duration
	budget    int // bytes still allowed to be read

	firstVersion uint16 // rewrite the first written record's version; 0 = leave
	wrote        bool
	clientRandom []byte // of the first ClientHello written

	limit time.Time // when set, no I/O deadline goes past it

	pending  []byte   // rest of the current record for the client
	queue    [][]byte // records read ahead, not yet handed to the client
	records  []tlsRecord
	onRecord func(tlsRecord) // sees each record before the client does
	// ahead, when set, is asked before the client gets its next record:
	// complete ends the connection there with errFlightComplete (every
	// record read is logged, so nothing the features need is lost); more
	// reads one more record of the server's flight first. It lets the
	// ATSF prober stop once the server's flight is whole instead of
	// making the TLS client parse certificates, verify signatures and
	// answer (work no feature needs).
	ahead     func() (complete, more bool)
	delivered int       // records handed to the client
	src       io.Reader // the connection through a read buffer; set on first read unless set before
	err       error     // sticky read error
}

// readBufSize is the receive buffer of one connection: a typical server
// flight in one read.
const readBufSize = 8 << 10

func newRecordConn(ctx context.Context, c net.Conn, ioTimeout time.Duration, readCap int) *recordConn {
	return &recordConn{Conn: c, ctx: ctx, ioTimeout: ioTimeout, budget: readCap}
}

// deadline is one I/O timeout from now, capped by ctx's deadline and limit.
func (r *recordConn) deadline() time.Time {
	d := time.Now().Add(r.ioTimeout)
	if cd, ok := r.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	if !r.limit.IsZero() && r.limit.Before(d) {
		d = r.limit
	}
	return d
}

func (r *recordConn) Write(b []byte) (int, error) {
	if err := r.Conn.SetWriteDeadline(r.deadline()); err != nil {
		return 0, fmt.Errorf("set write deadline: %w", err)
	}
	if !r.wrote && len(b) >= recordHeaderLen+4+2+32 && b[0] == recHandshake && b[recordHeaderLen] == 1 {
		r.clientRandom = append([]byte(nil), b[recordHeaderLen+6:recordHeaderLen+6+32]...)
	}
	if !r.wrote && r.firstVersion != 0 && len(b) >= recordHeaderLen && b[0] == 0x16 {
		// The record header is outside the handshake transcript, so this
		// changes nothing the server could verify.
		b = append([]byte(nil), b...)
		b[1], b[2] = byte(r.firstVersion>>8), byte(r.firstVersion)
	}
	r.wrote = true
	return r.Conn.Write(b)
}

// errFlightComplete ends a connection whose server flight holds every
// feature (recordConn.ahead).
var errFlightComplete = errors.New("server flight complete")

func (r *recordConn) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		if len(r.queue) == 0 && r.err == nil {
			r.fill()
		}
		if r.err == errFlightComplete || len(r.queue) == 0 {
			return 0, r.err
		}
		r.pending, r.queue = r.queue[0], r.queue[1:]
		r.delivered++
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// fill reads the next record, and more while ahead asks for them; a read
// error is kept for after the records already read.
func (r *recordConn) fill() {
	for {
		if r.ahead != nil {
			complete, more := r.ahead()
			if complete {
				r.err = errFlightComplete
				return
			}
			if !more && len(r.queue) > 0 {
				return
			}
		} else if len(r.queue) > 0 {
			return
		}
		if err := r.readRecord(); err != nil {
			r.err = err
			return
		}
	}
}

// readRecord reads and logs the next whole record.
func (r *recordConn) readRecord() error {
	if err := r.Conn.SetReadDeadline(r.deadline()); err != nil {
		return fmt.Errorf("set read deadline: %w", err)
	}
	if r.src == nil {
		// One read takes what the server sent so far (a whole flight,
		// usually) instead of two per record; records are still parsed
		// and logged only when the client asks for them.
		r.src = bufio.NewReaderSize(r.Conn, readBufSize)
	}
	var hdr [recordHeaderLen]byte
	n, err := io.ReadFull(r.src, hdr[:])
	if err != nil {
		if n > 0 && !looksTLS(hdr[:n]) {
			return fmt.Errorf("%w: % x", errNotTLS, hdr[:n])
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errUnexpectedEOF
		}
		return err
	}
	if !looksTLS(hdr[:]) {
		return fmt.Errorf("%w: % x", errNotTLS, hdr[:])
	}
	size := int(hdr[3])<<8 | int(hdr[4])
	if size > maxRecordBody {
		return fmt.Errorf("%w: header announces %d bytes", errRecordTooBig, size)
	}
	if recordHeaderLen+size > r.budget {
		return fmt.Errorf("%w (%d bytes left, record of %d)", errReadCapHit, r.budget, size)
	}
	r.budget -= recordHeaderLen + size
	rec := make([]byte, recordHeaderLen+size)
	copy(rec, hdr[:])
	if _, err := io.ReadFull(r.src, rec[recordHeaderLen:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errUnexpectedEOF
		}
		return err
	}
	t := tlsRecord{typ: hdr[0], vers: uint16(hdr[1])<<8 | uint16(hdr[2]), body: rec[recordHeaderLen:]}
	r.records = append(r.records, t)
	if r.onRecord != nil {
		r.onRecord(t)
	}
	r.queue = append(r.queue, rec)
	return nil
}

// handshake runs a TLS client's HandshakeContext without the goroutine
// that crypto/tls and utls start for every handshake under a cancellable
// context (with two channels and a context of its own): ctx's end closes
// conn instead, from a callback that costs nothing until then, and the
// error is ctx's, as theirs would be. The I/O deadlines of the recordConn
// on conn already follow ctx's deadline.
func handshake(ctx context.Context, conn net.Conn, hs func(context.Context) error) error {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	err := hs(context.Background())
	if !stop() {
		return ctx.Err() // ended while the handshake ran
	}
	return err
}

// looksTLS checks a record header prefix: a known content type and major
// version 3. An SSLv2 answer (high bit set), HTTP text or noise fails.
func looksTLS(h []byte) bool {
	if len(h) > 0 && (h[0] < 20 || h[0] > 24) {
		return false
	}
	if len(h) > 1 && h[1] != 3 {
		return false
	}
	return true
}
