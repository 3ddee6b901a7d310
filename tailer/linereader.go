package tailer

import (
	"bufio"
	"bytes"
	"io"
	"sync/atomic"
)

// readBufSize is the read buffer of a file: large enough that a read call
// is rare, small enough to stay in the cache while its lines are parsed.
// (Reading measured cheaper per line than mapping the file: a mapped log
// costs page faults and TLB misses as it streams by.)
const readBufSize = 256 << 10

// countingReader counts the bytes read from r: the file position of the
// bufio layer above it.
type countingReader struct {
	r io.Reader
	n int64
	// verify, when set, runs after every read that returned data and
	// before any of it is used: an error discards the data and is returned
	// instead (the file changed under the reader, see follower.verifyHead).
	verify func() error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.verify != nil {
		if verr := c.verify(); verr != nil {
			return 0, verr
		}
	}
	c.n += int64(n)
	return n, err
}

// lineReader splits a byte stream into lines with a bufio.Reader (not a
// Scanner: no token limit, and a partial last line survives io.EOF so that
// a follower can wait for the rest of it).
//
// Lines longer than max bytes are dropped while they stream by (memory stays
// bounded) and reported as long.
type lineReader struct {
	cr  countingReader
	br  *bufio.Reader
	max int

	buf      []byte // an incomplete line, or a complete one spanning buffers
	returned bool   // buf was handed out by the previous next call
	skipping bool   // dropping the rest of a line
	longSkip bool   // … because it is too long (false: resyncing after a seek)
	pending  int64  // bytes of the current incomplete line already consumed
	pos      int64  // offset just past the last complete line (or dropped line)

	nul *atomic.Uint64 // counts NUL bytes skipped at line starts; may be nil
}

func newLineReader(r io.Reader, max int, start int64) *lineReader {
	lr := &lineReader{max: max}
	lr.cr = countingReader{r: r, n: start}
	lr.br = bufio.NewReaderSize(&lr.cr, readBufSize)
	lr.pos = start
	return lr
}

// reset restarts reading from r at offset start, forgetting any partial line.
func (lr *lineReader) reset(r io.Reader, start int64) {
	lr.cr = countingReader{r: r, n: start, verify: lr.cr.verify}
	lr.br.Reset(&lr.cr)
	lr.buf, lr.returned, lr.skipping, lr.longSkip, lr.pending = lr.buf[:0], false, false, false, 0
	lr.pos = start
}

// resync drops bytes up to and including the next newline without counting
// them as a long line (used after seeking into the middle of a line).
func (lr *lineReader) resync() { lr.skipping, lr.longSkip = true, false }

// readPos is how far the underlying reader has been read.
func (lr *lineReader) readPos() int64 { return lr.cr.n }

// partial reports the bytes of an incomplete line held back.
func (lr *lineReader) partial() int64 { return lr.pending }

// next returns the next complete line without its newline; the slice is
// valid until the next call. long reports a dropped over-long line (line is
// nil). At the end of the data it returns io.EOF and keeps any incomplete
// line for later.
func (lr *lineReader) next() (line []byte, long bool, err error) {
	if lr.returned {
		lr.returned = false
		if cap(lr.buf) > 4<<20 {
			lr.buf = nil // do not pin a huge buffer after one big line
		} else {
			lr.buf = lr.buf[:0]
		}
	}
	for {
		frag, err := lr.br.ReadSlice('\n')
		if len(frag) > 0 && frag[0] == 0 && len(lr.buf) == 0 && !lr.skipping {
			// A NUL run where a line starts: copytruncate with a writer
			// that does not use O_APPEND leaves a hole the size of its old
			// offset. Skip it (bounded memory, no garbage line).
			k := 0
			for k < len(frag) && frag[k] == 0 {
				k++
			}
			lr.pos += int64(k)
			if lr.nul != nil {
				lr.nul.Add(uint64(k))
			}
			frag = frag[k:]
		}
		if len(frag) > 0 {
			complete := frag[len(frag)-1] == '\n'
			switch {
			case lr.skipping:
				lr.pending += int64(len(frag))
				if complete {
					lr.pos += lr.pending
					lr.pending = 0
					lr.skipping = false
					if lr.longSkip {
						return nil, true, nil
					}
					continue
				}
			case complete && len(lr.buf) == 0:
				lr.pos += int64(len(frag))
				if len(frag)-1 > lr.max {
					return nil, true, nil
				}
				return frag[:len(frag)-1], false, nil
			default:
				total := len(lr.buf) + len(frag)
				lineLen := total
				if complete {
					lineLen--
				}
				if lineLen > lr.max {
					// Too long: drop what we have and the rest of the line.
					lr.pending = int64(total)
					lr.buf = lr.buf[:0]
					if complete {
						lr.pos += lr.pending
						lr.pending = 0
						return nil, true, nil
					}
					lr.skipping, lr.longSkip = true, true
					break
				}
				lr.buf = append(lr.buf, frag...)
				lr.pending = int64(len(lr.buf))
				if complete {
					lr.pos += lr.pending
					lr.pending = 0
					lr.returned = true
					return lr.buf[:len(lr.buf)-1], false, nil
				}
			}
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		default:
			return nil, false, err
		}
	}
}

// flush hands out an incomplete last line as if it were complete (end of a
// file that will not grow any more). ok is false when there is none; long
// reports that it was being dropped as too long.
func (lr *lineReader) flush() (line []byte, long, ok bool) {
	if lr.pending == 0 {
		return nil, false, false
	}
	lr.pos += lr.pending
	lr.pending = 0
	if lr.skipping {
		lr.skipping = false
		return nil, lr.longSkip, lr.longSkip
	}
	lr.returned = true
	line = bytes.TrimSuffix(lr.buf, []byte{'\r'})
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, false, false
	}
	return line, false, true
}

// offset is the position just past the last complete (or dropped) line.
func (lr *lineReader) offset() int64 { return lr.pos }
