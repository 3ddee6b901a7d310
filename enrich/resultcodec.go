package enrich

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/stackprint/stackprint"
)

// The result file's record payload: a stackprint.Result and its matches in
// a compact binary form (uvarint lengths and numbers, strings as bytes).
// JSON cost tens of microseconds per read back; this is a few. Every
// field is written: TestResultCodecKeepsEveryField fills each field of
// the types by reflection, so a field added to them without a line here
// fails it.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrs(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendStr(b, s)
	}
	return b
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendTime(b []byte, t time.Time) []byte {
	n := len(b)
	b = append(b, 0)
	b, err := t.AppendBinary(b)
	if err != nil { // a zone offset time cannot carry: keep the instant in UTC
		b, _ = t.UTC().AppendBinary(b[:n+1])
	}
	b[n] = byte(len(b) - n - 1)
	return b
}

func appendResult(b []byte, r *stackprint.Result) []byte {
	n := len(b)
	b, _ = r.Target.IP.AppendBinary(append(b, 0)) // 0, 4 or 16 bytes and a zone
	b[n] = byte(len(b) - n - 1)
	b = binary.AppendUvarint(b, uint64(r.Target.Port))
	b = appendStr(b, r.Target.SNI)
	b = appendStr(b, r.Target.StartTLS)
	b = appendTime(b, r.Started)
	b = binary.AppendVarint(b, int64(r.Duration))
	b = appendStr(b, string(r.Status))
	b = appendStr(b, r.Error)
	b = binary.AppendVarint(b, int64(r.Conns))
	b = appendStr(b, r.StartTLS)
	b = appendStr(b, r.JARM)
	b = appendStr(b, r.JARMRaw)
	b = binary.AppendUvarint(b, uint64(len(r.Kinds)))
	for _, k := range r.Kinds {
		b = appendStr(b, k.Kind)
		b = appendStr(b, string(k.Status))
		b = appendStr(b, k.Error)
		b = binary.AppendVarint(b, int64(k.Conns))
		b = binary.AppendVarint(b, int64(k.Duration))
	}
	b = appendBool(b, r.ATSF != nil)
	if a := r.ATSF; a != nil {
		b = appendStr(b, a.Fingerprint)
		b = appendStr(b, a.ID)
		b = appendBool(b, a.Hellos != nil)
		b = binary.AppendUvarint(b, uint64(len(a.Hellos)))
		for _, h := range a.Hellos {
			b = appendStr(b, h.Name)
			b = appendStr(b, h.Raw)
			b = binary.AppendUvarint(b, uint64(h.Version))
			b = appendStr(b, h.Error)
		}
	}
	b = appendBool(b, r.Cert != nil)
	if c := r.Cert; c != nil {
		b = appendStr(b, c.SHA256)
		b = appendStr(b, c.SHA1)
		b = appendStr(b, c.Subject)
		b = appendStr(b, c.Issuer)
		b = appendStr(b, c.Serial)
		b = appendStrs(b, c.SANs)
		b = appendTime(b, c.NotBefore)
		b = appendTime(b, c.NotAfter)
		b = appendBool(b, c.SelfSigned)
		b = appendStr(b, c.KeyType)
		b = binary.AppendVarint(b, int64(c.KeyBits))
		b = appendStr(b, c.SigAlg)
		b = binary.AppendVarint(b, int64(c.ChainLen))
		b = appendStr(b, c.ParseError)
		b = appendStr(b, c.SPKISHA256)
	}
	b = appendBool(b, r.HTTP != nil)
	if h := r.HTTP; h != nil {
		b = binary.AppendVarint(b, int64(h.StatusCode))
		b = appendStr(b, h.Server)
	}
	return b
}

func appendMatches(b []byte, ms []stackprint.Match) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = appendStr(b, m.Kind)
		b = appendStr(b, m.Value)
		b = appendStr(b, m.Label)
		b = appendStr(b, m.Source)
		b = appendStr(b, m.Confidence)
		b = appendStr(b, m.Category)
		b = binary.AppendUvarint(b, m.BlockCount)
		b = binary.AppendUvarint(b, m.TopCount)
		b = appendBool(b, m.Near != nil)
		if n := m.Near; n != nil {
			b = binary.AppendVarint(b, int64(n.Agree))
			b = binary.AppendVarint(b, int64(n.Of))
			b = appendStrs(b, n.Differs)
			b = appendStrs(b, n.Details)
		}
	}
	return b
}

var errBadRecord = errors.New("malformed result record")

// reader decodes what the append functions wrote. The strings are
// substrings of one string made of the whole record (one allocation for
// all of them). The first error sticks; the decoded value is then void.
type reader struct {
	s   string
	err error
}

func (r *reader) fail() { r.err = errBadRecord; r.s = "" }

func (r *reader) uvarint() uint64 {
	v, n := uvarintString(r.s)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.s = r.s[n:]
	return v
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// uvarintString is binary.Uvarint over a string.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var sh uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<sh, i + 1
		}
		x |= uint64(c&0x7f) << sh
		sh += 7
	}
	return 0, 0
}

func (r *reader) bytes(n uint64) string {
	if n > uint64(len(r.s)) {
		r.fail()
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *reader) str() string { return r.bytes(r.uvarint()) }

// count reads a length of items each at least one byte long.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) strs() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

func (r *reader) bool() bool {
	b := r.bytes(1)
	return b == "\x01"
}

func (r *reader) time() time.Time {
	var t time.Time
	l := r.bytes(1)
	if l == "" {
		return t
	}
	if raw := r.bytes(uint64(l[0])); r.err == nil && t.UnmarshalBinary([]byte(raw)) != nil {
		r.fail()
	}
	return t
}

func (r *reader) addr() netip.Addr {
	var a netip.Addr
	l := r.bytes(1)
	if l == "" {
		return a
	}
	if raw := r.bytes(uint64(l[0])); r.err == nil && a.UnmarshalBinary([]byte(raw)) != nil {
		r.fail()
	}
	return a
}

func (r *reader) result() stackprint.Result {
	var out stackprint.Result
	out.Target.IP = r.addr()
	out.Target.Port = uint16(r.uvarint())
	out.Target.SNI = r.str()
	out.Target.StartTLS = r.str()
	out.Started = r.time()
	out.Duration = time.Duration(r.varint())
	out.Status = stackprint.Status(r.str())
	out.Error = r.str()
	out.Conns = int(r.varint())
	out.StartTLS = r.str()
	out.JARM = r.str()
	out.JARMRaw = r.str()
	if n := r.count(); n > 0 {
		out.Kinds = make([]stackprint.KindResult, n)
		for i := range out.Kinds {
			k := &out.Kinds[i]
			k.Kind = r.str()
			k.Status = stackprint.Status(r.str())
			k.Error = r.str()
			k.Conns = int(r.varint())
			k.Duration = time.Duration(r.varint())
		}
	}
	if r.bool() {
		a := &stackprint.ATSF{Fingerprint: r.str(), ID: r.str()}
		notNil := r.bool()
		if n := r.count(); n > 0 || notNil {
			a.Hellos = make([]stackprint.ATSFHello, n)
			for i := range a.Hellos {
				h := &a.Hellos[i]
				h.Name = r.str()
				h.Raw = r.str()
				h.Version = uint16(r.uvarint())
				h.Error = r.str()
			}
		}
		out.ATSF = a
	}
	if r.bool() {
		c := &stackprint.CertFacts{}
		c.SHA256 = r.str()
		c.SHA1 = r.str()
		c.Subject = r.str()
		c.Issuer = r.str()
		c.Serial = r.str()
		c.SANs = r.strs()
		c.NotBefore = r.time()
		c.NotAfter = r.time()
		c.SelfSigned = r.bool()
		c.KeyType = r.str()
		c.KeyBits = int(r.varint())
		c.SigAlg = r.str()
		c.ChainLen = int(r.varint())
		c.ParseError = r.str()
		c.SPKISHA256 = r.str()
		out.Cert = c
	}
	if r.bool() {
		out.HTTP = &stackprint.HTTPFacts{StatusCode: int(r.varint()), Server: r.str()}
	}
	return out
}

func (r *reader) matches() []stackprint.Match {
	n := r.count()
	if n == 0 {
		return nil
	}
	out := make([]stackprint.Match, n)
	for i := range out {
		m := &out[i]
		m.Kind = r.str()
		m.Value = r.str()
		m.Label = r.str()
		m.Source = r.str()
		m.Confidence = r.str()
		m.Category = r.str()
		m.BlockCount = r.uvarint()
		m.TopCount = r.uvarint()
		if r.bool() {
			m.Near = &stackprint.Near{Agree: int(r.varint()), Of: int(r.varint()), Differs: r.strs(), Details: r.strs()}
		}
	}
	return out
}
