package probe

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// Handshake message types the transcript parser reads.
const (
	hsServerHello   = 2
	hsEncryptedExts = 8
	hsCertificate   = 11
	hsCertRequest   = 13
	hsServerKeyExch = 12
	hsHelloDone     = 14
	hsFinished      = 20
	recChangeCipher = 20
	recAlert        = 21
	recHandshake    = 22
	recApplication  = 23
	maxChainStored  = 16 // certificates kept from one Certificate message
	maxHandshakeBuf = 1 << 20
	versionTLS13    = 0x0304
	serverHSLabel   = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
)

// helloRetryRandom is SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
var helloRetryRandom = [32]byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// tlsExt is one extension as the server sent it.
type tlsExt struct {
	typ  uint16
	data []byte
}

// extList is the extension list of one handshake message.
type extList struct {
	seen    bool // the message arrived (possibly with no extensions)
	noBlock bool // a ServerHello/HRR that ended before its extensions block
	exts    []tlsExt
}

// transcript is what the server's records, as the client consumed them,
// say: the ATSF features of docs/ATSF.md §2.1 plus the certificate chain.
type transcript struct {
	haveHello   bool   // a ServerHello or HelloRetryRequest was parsed
	version     uint16 // its legacy_version
	cipher      uint16
	sh, ee, cr  extList
	hrr, ct     extList
	alerts      []uint8
	tls13       bool   // the ServerHello selected TLS 1.3
	negotiated  uint16 // selected version (supported_versions or legacy_version)
	group       uint16 // key_share group of the ServerHello
	undecrypted bool   // encrypted handshake records arrived without usable keys
	chain       [][]byte
	chainLen    int
	// Where the server's first flight stands (not features): TLS 1.2
	// ServerHelloDone or TLS 1.3 Finished read, a CertificateRequest in
	// it, an alert or a record that is no handshake after the hello.
	flightEnd, certReq, flightBroken bool
	noChain                          bool     // keep only the leaf of the chain
	serverRandom                     [32]byte // of the ServerHello
	ske                              []byte   // TLS 1.2 ServerKeyExchange body
}

// parseTranscript walks the records in order. secret is the server
// handshake traffic secret (nil when none was logged); it is only used
// after a TLS 1.3 ServerHello. It never panics on hostile input and keeps
// what it could read.
func parseTranscript(records []tlsRecord, secret []byte) *transcript {
	p := newTranscriptParser(false)
	for _, rec := range records {
		p.step(rec, secret)
	}
	return p.t
}

// scanTranscript is parseTranscript without keeping the certificate chain:
// for the decisions taken while the records arrive.
func scanTranscript(records []tlsRecord, secret []byte) *transcript {
	p := newTranscriptParser(true)
	for _, rec := range records {
		p.step(rec, secret)
	}
	return p.t
}

// transcriptParser is the state of a walk over the records, kept so that
// a walk can go on when more records arrive (transcriptScan).
type transcriptParser struct {
	t             *transcript
	plain, inner  []byte // handshake message reassembly buffers
	dec           *tls13Decrypter
	encDone       bool // server Finished seen, or decryption impossible
	stopped       bool // a reassembly buffer overflowed: nothing more is read
	shAt, records int  // record that completed the ServerHello (-1: none yet); records stepped
}

func newTranscriptParser(noChain bool) *transcriptParser {
	return &transcriptParser{t: &transcript{noChain: noChain}, shAt: -1}
}

// needsSecret reports whether stepping rec would use the handshake secret:
// the first encrypted record after a TLS 1.3 ServerHello.
func (p *transcriptParser) needsSecret(rec tlsRecord) bool {
	return !p.stopped && rec.typ == recApplication && p.t.tls13 && !p.encDone && p.dec == nil
}

// step parses the next record.
func (p *transcriptParser) step(rec tlsRecord, secret []byte) {
	t := p.t
	p.records++
	if p.stopped {
		return
	}
	if t.sh.seen && !t.flightEnd && rec.typ != recChangeCipher {
		want := uint8(recHandshake)
		if t.tls13 {
			want = recApplication
		}
		t.flightBroken = t.flightBroken || rec.typ != want
	}
	switch rec.typ {
	case recAlert:
		t.addAlerts(rec.body)
	case recHandshake:
		if t.tls13 {
			return // nothing but ServerHello may be plaintext in TLS 1.3
		}
		if len(p.plain)+len(rec.body) > maxHandshakeBuf {
			p.stopped = true
			return
		}
		p.plain = append(p.plain, rec.body...)
		p.plain = t.eachMessage(p.plain, t.plainMessage)
		if t.sh.seen && p.shAt < 0 {
			p.shAt = p.records - 1
		}
	case recApplication:
		if !t.tls13 || p.encDone {
			return
		}
		if p.dec == nil {
			var err error
			if secret != nil {
				p.dec, err = newTLS13Decrypter(t.cipher, secret)
			}
			if secret == nil || err != nil {
				t.undecrypted, p.encDone = true, true
				return
			}
		}
		typ, pt, err := p.dec.open(rec)
		if err != nil {
			t.undecrypted, p.encDone = true, true
			return
		}
		switch typ {
		case recAlert:
			t.addAlerts(pt)
		case recHandshake:
			if len(p.inner)+len(pt) > maxHandshakeBuf {
				p.stopped = true
				return
			}
			p.inner = append(p.inner, pt...)
			p.inner = t.eachMessage(p.inner, func(typ uint8, body []byte) {
				if !p.encDone {
					p.encDone = t.encryptedMessage(typ, body)
				}
			})
		}
	}
}

// transcriptScan is scanTranscript for a record log that only grows: each
// call parses the records added since the last one (a TLS 1.3 record is
// decrypted once, not once per call) and returns what scanTranscript would
// return for the whole log and that secret. The records must be the same
// log, extended; the secret may appear (nil, then the logged secret) but
// never change.
type transcriptScan struct {
	p      *transcriptParser // the walk over the records that need no secret or had it
	secret []byte            // the secret the walk used, if any
}

func newTranscriptScan() *transcriptScan {
	return &transcriptScan{p: newTranscriptParser(true)}
}

// scan brings the walk up to records and returns the transcript. The
// result is valid until the next call.
func (s *transcriptScan) scan(records []tlsRecord, secret []byte) *transcript {
	if s.secret != nil && !bytes.Equal(s.secret, secret) || s.p.records > len(records) {
		*s = *newTranscriptScan() // not the log or secret walked so far: start over
	}
	if secret != nil {
		s.secret = secret
	}
	for s.p.records < len(records) {
		rec := records[s.p.records]
		if secret == nil && s.p.needsSecret(rec) {
			// Without the secret this record ends decryption for good,
			// which the secret logged later would undo: walk the rest on
			// a copy and keep the walk here for the next call.
			c := s.p.fork()
			for _, r := range records[s.p.records:] {
				c.step(r, nil)
			}
			return c.t
		}
		s.p.step(rec, secret)
	}
	return s.p.t
}

// shIn reports whether the ServerHello is complete within the first n
// records (scanTranscript(records[:n], nil).sh.seen: the ServerHello is
// plaintext, so the secret never changes where it ends).
func (s *transcriptScan) shIn(n int) bool {
	return s.p.shAt >= 0 && s.p.shAt < n
}

// fork copies the walk so that stepping the copy leaves p as it is: every
// slice the walk appends to is clipped, so an append reallocates.
func (p *transcriptParser) fork() *transcriptParser {
	t := *p.t
	t.alerts, t.chain = slices.Clip(t.alerts), slices.Clip(t.chain)
	c := *p
	c.t, c.plain, c.inner = &t, slices.Clip(p.plain), slices.Clip(p.inner)
	return &c
}

func (t *transcript) addAlerts(b []byte) {
	for len(b) >= 2 {
		t.alerts = append(t.alerts, b[1])
		b = b[2:]
	}
}

// eachMessage calls fn for every complete handshake message at the start
// of buf and returns the incomplete rest.
func (t *transcript) eachMessage(buf []byte, fn func(typ uint8, body []byte)) []byte {
	for len(buf) >= 4 {
		n := int(buf[1])<<16 | int(buf[2])<<8 | int(buf[3])
		if len(buf) < 4+n {
			break
		}
		fn(buf[0], buf[4:4+n])
		buf = buf[4+n:]
	}
	return buf
}

// plainMessage handles a handshake message sent in the clear.
func (t *transcript) plainMessage(typ uint8, body []byte) {
	switch typ {
	case hsServerHello:
		t.serverHello(body)
	case hsCertificate:
		if !t.tls13 && t.chainLen == 0 {
			t.certList(body, false)
		}
	case hsCertRequest:
		t.certReq = true
	case hsServerKeyExch:
		if t.ske == nil {
			t.ske = append([]byte{}, body...)
		}
	case hsHelloDone:
		t.flightEnd = true
	}
}

// encryptedMessage handles a decrypted TLS 1.3 handshake message and
// reports whether the server's handshake flight is over.
func (t *transcript) encryptedMessage(typ uint8, body []byte) bool {
	s := byteString(body)
	switch typ {
	case hsEncryptedExts:
		if !t.ee.seen {
			t.ee = readExtList(&s)
		}
	case hsCertRequest:
		t.certReq = true
		if !t.cr.seen {
			if _, ok := s.vec8(); ok {
				t.cr = readExtList(&s)
			} else {
				t.cr = extList{seen: true}
			}
		}
	case hsCertificate:
		if !t.ct.seen {
			t.certList(body, true)
		}
	case hsFinished:
		t.flightEnd = true
		return true
	}
	return false
}

// flightState tells the ATSF prober whether the server's first flight
// holds every feature (complete: stop, the rest of the handshake adds
// none) or is still arriving (more: read the next record before the TLS
// client gets any). A flight with a CertificateRequest is never complete:
// the server's reaction to the client's answer (an alert) is a feature.
// Neither is returned whenever the client must go on as before: no
// hello yet, a HelloRetryRequest, an alert, an undecryptable record.
func (t *transcript) flightState(haveSecret, shDone bool) (complete, more bool) {
	switch {
	case !t.sh.seen || !shDone || t.tls13 && !haveSecret || t.flightBroken || t.undecrypted || len(t.alerts) > 0:
		return false, false
	case t.flightEnd:
		return !t.certReq, false
	}
	return false, true
}

// serverHello parses a ServerHello or HelloRetryRequest body.
func (t *transcript) serverHello(body []byte) {
	s := byteString(body)
	vers, ok1 := s.u16()
	random, ok2 := s.take(32)
	_, ok3 := s.vec8() // session id
	cipher, ok4 := s.u16()
	_, ok5 := s.u8() // compression
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return // not a ServerHello anyone could act on
	}
	// Rule SH-absent (docs/ATSF.md §2.1, measured on the reference): a hello
	// that ends right after the compression method has an empty field;
	// only a present, empty block gives "-".
	noBlock := len(s) == 0
	exts := readExtList(&s)
	exts.noBlock = noBlock
	if [32]byte(random) == helloRetryRandom {
		if t.hrr.seen {
			return
		}
		t.hrr = exts
		if !t.sh.seen {
			t.haveHello, t.version, t.cipher = true, vers, cipher
		}
		return
	}
	if t.sh.seen {
		return
	}
	t.sh = exts
	t.serverRandom = [32]byte(random)
	t.haveHello, t.version, t.cipher = true, vers, cipher
	t.negotiated = vers
	for _, e := range exts.exts {
		switch e.typ {
		case extSupportedVers:
			if len(e.data) == 2 {
				t.negotiated = uint16(e.data[0])<<8 | uint16(e.data[1])
			}
		case extKeyShare:
			if len(e.data) >= 2 {
				t.group = uint16(e.data[0])<<8 | uint16(e.data[1])
			}
		}
	}
	t.tls13 = t.negotiated == versionTLS13
}

// serverALPN returns the protocol the server selected, once the message
// that carries it (TLS 1.3: EncryptedExtensions, else the ServerHello) has
// been read; decided is false before that.
func (t *transcript) serverALPN() (proto string, decided bool) {
	l := t.sh
	switch {
	case t.tls13 && t.ee.seen:
		l = t.ee
	case t.tls13 || !t.sh.seen:
		return "", false
	}
	for _, e := range l.exts {
		if e.typ != extALPN {
			continue
		}
		s := byteString(e.data)
		list, ok := s.vec16()
		if !ok {
			return "", true
		}
		p, ok := list.vec8()
		if !ok {
			return "", true
		}
		return string(p), true
	}
	return "", true
}

// certList reads a Certificate message: the chain and, for TLS 1.3, the
// leaf entry's extensions.
func (t *transcript) certList(body []byte, tls13 bool) {
	s := byteString(body)
	if tls13 {
		t.ct = extList{seen: true}
		if _, ok := s.vec8(); !ok { // certificate_request_context
			return
		}
	}
	list, ok := s.vec24()
	if !ok {
		return
	}
	for i := 0; len(list) > 0; i++ {
		der, ok := list.vec24()
		if !ok {
			return
		}
		if t.chainLen < maxChainStored && (t.chainLen == 0 || !t.noChain) {
			t.chain = append(t.chain, append([]byte(nil), der...))
		}
		t.chainLen++
		if tls13 {
			exts, ok := list.vec16()
			if !ok {
				return
			}
			if i == 0 {
				t.ct = parseExts(exts)
			}
		}
	}
}

// readExtList reads an optional uint16-prefixed extension list; a message
// that ends before it has zero extensions, a truncated list keeps what
// parsed.
func readExtList(s *byteString) extList {
	if len(*s) == 0 {
		return extList{seen: true}
	}
	rest := *s
	exts, ok := s.vec16()
	if !ok {
		exts = rest[min(2, len(rest)):]
		*s = nil
	}
	return parseExts(exts)
}

// parseExts reads type/length/data triples until the bytes run out.
func parseExts(exts byteString) extList {
	l := extList{seen: true}
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			break
		}
		l.exts = append(l.exts, tlsExt{typ: typ, data: data})
	}
	return l
}

// atsfStaticExt lists the extension types whose value is part of the
// fingerprint (docs/ATSF.md §2.1); every other type only counts by presence,
// key_share by its group.
func atsfStaticExt(typ uint16) bool {
	switch typ {
	case 1, 7, 8, 9, 10, 11, 13, 15, 16, 19, 20, 24, 27, 28, 43, 45, 47, 50:
		return true
	}
	return false
}

// encode renders one list: "" never received (or a hello without an
// extensions block), "-" received empty, else type.value joined with "-".
func (l extList) encode(b *strings.Builder) {
	if !l.seen || l.noBlock {
		return
	}
	if len(l.exts) == 0 {
		b.WriteByte('-')
		return
	}
	for i, e := range l.exts {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(e.typ)))
		b.WriteByte('.')
		switch {
		case atsfStaticExt(e.typ):
			b.WriteString(base64.RawStdEncoding.EncodeToString(e.data))
		case e.typ == extKeyShare && len(e.data) >= 2:
			b.WriteString(strconv.Itoa(int(e.data[0])<<8 | int(e.data[1])))
		}
	}
}

// atsfString is the per-ClientHello string of docs/ATSF.md §2.1:
// version_cipher_SH_EE_CR_HRR_CT, then "<" and the received alerts. An
// answer without any of these is "" (no data).
func (t *transcript) atsfString() string {
	var b strings.Builder
	if t.haveHello {
		b.WriteString(strconv.Itoa(int(t.version)))
		b.WriteByte('_')
		b.WriteString(strconv.FormatUint(uint64(t.cipher), 16))
	} else {
		b.WriteByte('_')
	}
	for _, l := range []extList{t.sh, t.ee, t.cr, t.hrr, t.ct} {
		b.WriteByte('_')
		l.encode(&b)
	}
	if len(t.alerts) > 0 {
		b.WriteByte('<')
		for i, a := range t.alerts {
			if i > 0 {
				b.WriteByte('-')
			}
			b.WriteString(strconv.Itoa(int(a)))
		}
	}
	if s := b.String(); s != "______" {
		return s
	}
	return ""
}

// CombineATSF joins per-ClientHello strings (in ATSFHelloNames order) into
// the server fingerprint of docs/ATSF.md §2.2 and returns it with its sha256
// hex id. Status_request (5) is dropped from every list because stapling
// depends on the deployment, not the stack. A target with any empty
// per-ClientHello string has no fingerprint: both results are "".
func CombineATSF(raws []string) (fingerprint, id string) {
	if len(raws) == 0 {
		return "", ""
	}
	for _, r := range raws {
		if r == "" {
			return "", ""
		}
	}
	fp := stripStatusRequest(strings.Join(raws, "|"))
	sum := sha256.Sum256([]byte(fp))
	return fp, hex.EncodeToString(sum[:])
}

// stripStatusRequest removes "5." entries. Base64 never contains "-" or
// ".", so "-5." and "_5." can only be a status_request entry. A first
// entry keeps its field separator: "_5.-x" becomes "_x", a lone "_5."
// becomes "_".
func stripStatusRequest(s string) string {
	s = strings.ReplaceAll(s, "-5.", "")
	s = strings.ReplaceAll(s, "_5.-", "_")
	return strings.ReplaceAll(s, "_5.", "_")
}

// byteString is a minimal bounds-checked reader (cryptobyte's shape,
// without the dependency on its panicking-free contract being remembered).
type byteString []byte

func (s *byteString) take(n int) ([]byte, bool) {
	if n < 0 || len(*s) < n {
		return nil, false
	}
	v := (*s)[:n]
	*s = (*s)[n:]
	return v, true
}

func (s *byteString) u8() (uint8, bool) {
	v, ok := s.take(1)
	if !ok {
		return 0, false
	}
	return v[0], true
}

func (s *byteString) u16() (uint16, bool) {
	v, ok := s.take(2)
	if !ok {
		return 0, false
	}
	return uint16(v[0])<<8 | uint16(v[1]), true
}

func (s *byteString) vec8() (byteString, bool) {
	n, ok := s.u8()
	if !ok {
		return nil, false
	}
	v, ok := s.take(int(n))
	return v, ok
}

func (s *byteString) vec16() (byteString, bool) {
	n, ok := s.u16()
	if !ok {
		return nil, false
	}
	v, ok := s.take(int(n))
	return v, ok
}

func (s *byteString) vec24() (byteString, bool) {
	v, ok := s.take(3)
	if !ok {
		return nil, false
	}
	r, ok := s.take(int(v[0])<<16 | int(v[1])<<8 | int(v[2]))
	return r, ok
}
