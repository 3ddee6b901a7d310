package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/stackprint/stackprint"
)

// Dialer is how probes open TCP connections; tests inject a counting one.
// *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// probeDialer is the system dialer for probe connections. A probe
// connection lives for one exchange, so TCP keep-alive (four setsockopt
// calls per connection in Go's default dialer) never comes into play.
func probeDialer() *net.Dialer {
	return &net.Dialer{KeepAlive: -1}
}

// JARM probe defaults.
const (
	DefaultJARMIOTimeout = 5 * time.Second  // per connect, send and recv (jarm.py: 20 s)
	DefaultJARMDeadline  = 15 * time.Second // whole target
	JARMReadCap          = 1484             // jarm.py's single recv(1484)
)

// JARMConfig configures a JARM prober. The zero value is usable.
type JARMConfig struct {
	Dialer    Dialer        // nil → probeDialer()
	IOTimeout time.Duration // per connect/send/recv; 0 → DefaultJARMIOTimeout. Any timeout aborts the run (ZeroJARM, StatusTimeout), like jarm.py.
	Deadline  time.Duration // hard deadline for the whole target; 0 → DefaultJARMDeadline
	Rand      io.Reader     // nil → crypto/rand; must be safe for concurrent use if Probe is
	ReadCap   int           // ≤0 or >JARMReadCap → JARMReadCap; a smaller cap is for tests only and breaks bit-identity
	// Answered is called once, after the first probe that the server
	// answered in any way (it is no tarpit), before the next connection;
	// an error aborts the run like a timeout. Optional.
	Answered func(context.Context) error
}

// JARM runs JARM probes. It is immutable after NewJARM and safe for
// concurrent use (provided the configured Dialer and Rand are).
type JARM struct {
	dialer    Dialer
	ioTimeout time.Duration
	answered  func(context.Context) error
	deadline  time.Duration
	rand      io.Reader
	readCap   int
}

// NewJARM returns a prober with cfg's zero fields set to their defaults.
func NewJARM(cfg JARMConfig) *JARM {
	j := &JARM{
		dialer:    cfg.Dialer,
		ioTimeout: cfg.IOTimeout,
		answered:  cfg.Answered,
		deadline:  cfg.Deadline,
		rand:      cfg.Rand,
		readCap:   cfg.ReadCap,
	}
	if j.dialer == nil {
		j.dialer = probeDialer()
	}
	if j.ioTimeout <= 0 {
		j.ioTimeout = DefaultJARMIOTimeout
	}
	if j.deadline <= 0 {
		j.deadline = DefaultJARMDeadline
	}
	if j.rand == nil {
		j.rand = rand.Reader
	}
	if j.readCap <= 0 || j.readCap > JARMReadCap {
		j.readCap = JARMReadCap
	}
	return j
}

// jarmFail classifies a probe that did not yield an answer.
type jarmFail int

const (
	failNone    jarmFail = iota
	failConnect          // connect refused or failed otherwise (unreachable, …)
	failReset            // reset / broken pipe, or shutdown failed after data
	failEOF              // peer closed without sending
	failOther            // any other I/O error
	failNotTLS           // the STARTTLS upgrade was refused
)

// jarmAbort is a timeout or cancellation: jarm.py stops probing and the
// whole run hashes to zero.
type jarmAbort struct{ err error }

func (a *jarmAbort) Error() string { return a.err.Error() }
func (a *jarmAbort) Unwrap() error { return a.err }

// jarmTally accumulates per-probe outcomes for the status mapping, with
// the first message of each kind for Result.Error.
type jarmTally struct {
	parsed, tls, notTLS, connect, reset, other        int
	tlsMsg, notTLSMsg, connectMsg, resetMsg, otherMsg string
}

// keepFirst sets *dst to msg unless it already holds one.
func keepFirst(dst *string, msg string) {
	if *dst == "" {
		*dst = msg
	}
}

// Probe runs the ten JARM probes against t.Addr(), sequentially, one fresh
// TCP connection each, sending sni verbatim as server_name (pass
// t.IP.String() for the reference behaviour; "" means exactly that). It
// never panics and always returns a Result with Status, Conns (dial
// attempts), Started, Duration, JARM and JARMRaw set; Error is set when the
// status is not ok. See the package documentation for the status mapping.
func (j *JARM) Probe(ctx context.Context, t stackprint.Target, sni string) (res stackprint.Result) {
	res = stackprint.Result{Target: t, Started: time.Now()}
	defer func() {
		if r := recover(); r != nil {
			// A panicking injected Dialer or Rand must not take the
			// daemon down.
			res.Status, res.JARM, res.JARMRaw = stackprint.StatusHandshakeError, stackprint.ZeroJARM, jarmRawEmpty
			res.Error = fmt.Sprintf("jarm: internal error: %v", r)
		}
		res.Duration = time.Since(res.Started)
	}()

	ip := t.IP.Unmap()
	if !ip.IsValid() || t.Port == 0 {
		res.Status, res.JARM, res.JARMRaw = stackprint.StatusRefused, stackprint.ZeroJARM, jarmRawEmpty
		res.Error = fmt.Sprintf("jarm: invalid target %s", t.Addr())
		return res
	}
	if sni == "" {
		sni = ip.String()
	}
	network := "tcp4"
	if ip.Is6() {
		network = "tcp6"
	}
	addr := netip.AddrPortFrom(ip, t.Port).String() // [v6]:port for IPv6

	hellos, err := BuildJARMProbes(sni, j.rand)
	if err != nil {
		res.Status, res.JARM, res.JARMRaw = stackprint.StatusHandshakeError, stackprint.ZeroJARM, jarmRawEmpty
		res.Error = fmt.Sprintf("jarm: %v", err)
		return res
	}

	ctx, cancel := context.WithTimeout(ctx, j.deadline)
	defer cancel()

	specs := jarmProbeSpecs()
	buf := make([]byte, j.readCap)
	var pieces [10]string
	var tally jarmTally
	for i, hello := range hellos {
		if err := ctxDone(ctx); err != nil {
			return j.aborted(res, fmt.Errorf("before probe %d: %w", i+1, err))
		}
		data, fail, conns, err := j.exchange(ctx, network, addr, hello, buf)
		res.Conns += conns
		var abort *jarmAbort
		if errors.As(err, &abort) {
			return j.aborted(res, fmt.Errorf("probe %d (%s): %w", i+1, specs[i].name, abort.err))
		}
		if i == 0 && j.answered != nil {
			if err := j.answered(ctx); err != nil {
				return j.aborted(res, fmt.Errorf("after probe 1: %w", err))
			}
		}
		pieces[i] = jarmEmpty
		switch fail {
		case failConnect:
			tally.connect++
			keepFirst(&tally.connectMsg, err.Error())
		case failReset:
			tally.reset++
			keepFirst(&tally.resetMsg, err.Error())
		case failEOF:
			// The server closed without a byte: counted by elimination.
		case failOther:
			tally.other++
			keepFirst(&tally.otherMsg, err.Error())
		case failNotTLS:
			tally.notTLS++
			keepFirst(&tally.notTLSMsg, err.Error())
		case failNone:
			pieces[i] = ParseJARMAnswer(data)
			switch {
			case pieces[i] != jarmEmpty:
				tally.parsed++
			case data[0] == 0x15 || data[0] == 0x16:
				tally.tls++
				keepFirst(&tally.tlsMsg, fmt.Sprintf("probe %d: answer % x…", i+1, data[:min(len(data), 7)]))
			default:
				tally.notTLS++
				keepFirst(&tally.notTLSMsg, fmt.Sprintf("probe %d: answer %q…", i+1, data[:min(len(data), 16)]))
			}
		}
	}
	res.JARMRaw = strings.Join(pieces[:], ",")
	return j.finish(res, &tally, pieces)
}

// aborted is jarm.py's reaction to a timeout: forget every answer.
func (j *JARM) aborted(res stackprint.Result, err error) stackprint.Result {
	res.Status = stackprint.StatusTimeout
	res.JARM = stackprint.ZeroJARM
	res.JARMRaw = jarmRawEmpty
	res.Error = "jarm: " + err.Error()
	return res
}

// finish hashes the raw JARM and maps the tally to a status.
func (j *JARM) finish(res stackprint.Result, tl *jarmTally, pieces [10]string) stackprint.Result {
	h, err := JARMHash(res.JARMRaw)
	if err == nil && len(h) != len(stackprint.ZeroJARM) {
		// A "," inside an ALPN added pieces; jarm.py would print this
		// longer string, which is no JARM.
		err = fmt.Errorf("%w: %d pieces", ErrJARMHash, strings.Count(res.JARMRaw, ",")+1)
	}
	if err != nil {
		res.Status, res.JARM = stackprint.StatusHandshakeError, ""
		res.Error = "jarm: " + err.Error()
		for i, p := range pieces {
			if jarmRawAmbiguous(p) {
				res.Error = fmt.Sprintf("jarm: probe %d: server ALPN contains '|' or ',': %v", i+1, err)
				break
			}
		}
		return res
	}
	res.JARM = h
	switch {
	case tl.parsed > 0:
		res.Status = stackprint.StatusOK
	case tl.connect == len(pieces):
		res.Status = stackprint.StatusRefused
		res.Error = "jarm: every connect failed: " + tl.connectMsg
	case tl.notTLS > 0:
		res.Status = stackprint.StatusNotTLS
		res.Error = fmt.Sprintf("jarm: %d of 10 answers are not TLS: %s", tl.notTLS, tl.notTLSMsg)
	case tl.tls > 0:
		res.Status = stackprint.StatusHandshakeError
		res.Error = fmt.Sprintf("jarm: no ServerHello, %d TLS alerts or unparsable records: %s", tl.tls, tl.tlsMsg)
	case tl.reset > 0:
		res.Status = stackprint.StatusReset
		res.Error = fmt.Sprintf("jarm: %d of 10 probes reset: %s", tl.reset, tl.resetMsg)
	default:
		res.Status = stackprint.StatusHandshakeError
		msg := "server closed without answering"
		switch {
		case tl.otherMsg != "":
			msg = tl.otherMsg
		case tl.connectMsg != "":
			msg += "; " + tl.connectMsg
		}
		res.Error = "jarm: no answer: " + msg
	}
	return res
}

// exchange is jarm.py's send_packet: connect, send the whole hello, one
// read of up to len(buf) bytes, shutdown, close. A *jarmAbort error means a
// timeout or cancellation; otherwise fail says why no data came back.
func (j *JARM) exchange(ctx context.Context, network, addr string, hello, buf []byte) (data []byte, fail jarmFail, conns int, err error) {
	dctx, cancel := context.WithTimeout(ctx, j.ioTimeout)
	conn, err := j.dialer.DialContext(dctx, network, addr)
	cancel()
	if err != nil {
		if cerr := ctxDone(ctx); cerr != nil {
			return nil, failNone, 1, &jarmAbort{cerr}
		}
		if isTimeout(err) {
			return nil, failNone, 1, &jarmAbort{fmt.Errorf("connect: %w", err)}
		}
		if errors.Is(err, errNotTLS) {
			return nil, failNotTLS, 1, fmt.Errorf("connect: %w", err)
		}
		return nil, failConnect, 1, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	// Unblock a pending write or read as soon as ctx is cancelled.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	ioErr := func(op string, err error) (jarmFail, error) {
		if cerr := ctxDone(ctx); cerr != nil {
			return failNone, &jarmAbort{cerr}
		}
		switch {
		case isTimeout(err):
			return failNone, &jarmAbort{fmt.Errorf("%s: %w", op, err)}
		case errors.Is(err, io.EOF):
			return failEOF, fmt.Errorf("%s: %w", op, err)
		case isReset(err):
			return failReset, fmt.Errorf("%s: %w", op, err)
		}
		return failOther, fmt.Errorf("%s: %w", op, err)
	}

	if err := conn.SetDeadline(j.ioDeadline(ctx)); err != nil {
		f, err := ioErr("set deadline", err)
		return nil, f, 1, err
	}
	if _, err := conn.Write(hello); err != nil {
		f, err := ioErr("send", err)
		return nil, f, 1, err
	}
	if err := conn.SetDeadline(j.ioDeadline(ctx)); err != nil {
		f, err := ioErr("set deadline", err)
		return nil, f, 1, err
	}
	n, err := conn.Read(buf) // exactly one read, like jarm.py's recv(1484)
	if n == 0 {
		if err == nil {
			err = io.EOF
		}
		f, err := ioErr("recv", err)
		return nil, f, 1, err
	}
	// jarm.py calls shutdown(SHUT_RDWR) inside its try block: when that
	// fails (the peer already reset), the answer is dropped.
	if err := shutdownBoth(conn); err != nil {
		return nil, failReset, 1, fmt.Errorf("shutdown after %d bytes: %w", n, err)
	}
	return buf[:n], failNone, 1, nil
}

// ioDeadline is one I/O timeout from now, capped by the target deadline.
func (j *JARM) ioDeadline(ctx context.Context) time.Time {
	d := time.Now().Add(j.ioTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// ctxDone is ctx.Err(), but also reports a deadline that has passed while
// the context's own timer has not fired yet: an I/O deadline capped at the
// target deadline can expire first.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}
