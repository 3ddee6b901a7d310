package tailer

import "unsafe"

// strArena copies the short strings an event keeps (Zeek uid, server
// name) into shared chunks: one allocation per chunk instead of one per
// string. A chunk's bytes are never written again once handed out, so the
// strings are immutable as Go requires. A chunk lives as long as any
// string in it: chunks are small, so that an event kept waiting for its
// probe pins at most a few hundred bytes of other lines' strings.
type strArena struct{ buf []byte }

const (
	arenaChunk  = 512 // bytes per chunk
	arenaMaxStr = 64  // longer strings get their own allocation
)

// str returns b as a string.
func (a *strArena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaMaxStr {
		return string(b)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return unsafe.String(&a.buf[n], len(b))
}
