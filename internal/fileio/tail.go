package fileio

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// tailChunk is how much of a file is read per step when looking backwards
// for a line; Zeek log lines are far shorter.
const tailChunk = 64 << 10

// EndsTorn reports whether f is non-empty and its last byte is not a
// newline, i.e. a writer died in the middle of a line.
func EndsTorn(f *os.File) (bool, error) {
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() == 0 {
		return false, nil
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], st.Size()-1); err != nil {
		return false, fmt.Errorf("read last byte: %w", err)
	}
	return b[0] != '\n', nil
}

// LastLine returns the last complete or partial line of f (without its
// newline), looking back at most tailChunk bytes; a longer line is
// returned truncated to its end, which is enough to test for "#close".
func LastLine(f *os.File, size int64) ([]byte, error) {
	start := max(0, size-tailChunk)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read tail: %w", err)
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		return buf[i+1:], nil
	}
	if start > 0 {
		return nil, nil // a line longer than tailChunk: not a header line
	}
	return buf, nil
}

// LastLineWithPrefix returns the last line of f that starts with prefix, or
// nil. It reads backwards so reopening a large log stays cheap.
func LastLineWithPrefix(f *os.File, size int64, prefix string) ([]byte, error) {
	needle := []byte("\n" + prefix)
	var carry []byte // head of the later chunk, so a match across chunks is found
	for end := size; end > 0; {
		start := max(0, end-tailChunk)
		buf := make([]byte, end-start, end-start+int64(len(carry)))
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return nil, fmt.Errorf("read log: %w", err)
		}
		buf = append(buf, carry...)
		off := int64(-1)
		if i := bytes.LastIndex(buf, needle); i >= 0 {
			off = start + int64(i) + 1
		} else if start == 0 && bytes.HasPrefix(buf, needle[1:]) {
			off = 0
		}
		if off >= 0 {
			return readLineAt(f, off)
		}
		carry = append([]byte(nil), buf[:min(len(needle)-1, len(buf))]...)
		end = start
	}
	return nil, nil
}

// readLineAt returns the line starting at off, without its newline, cut
// after about tailChunk bytes (no header line is that long).
func readLineAt(f *os.File, off int64) ([]byte, error) {
	var line []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.ReadAt(buf, off)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return append(line, buf[:i]...), nil
		}
		line = append(line, buf[:n]...)
		off += int64(n)
		if err == io.EOF || len(line) > tailChunk {
			return line, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read line: %w", err)
		}
	}
}

// TruncateTorn cuts f back to just past its last newline, dropping a
// partial record a failed write left (a full disk writes what fits). It
// looks back at most tailChunk bytes; a file whose last newline is further
// back keeps its tail and reports torn, so the next record starts on its
// own line. It returns the new size.
func TruncateTorn(f *os.File) (size int64, torn bool, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	size = st.Size()
	if size == 0 {
		return 0, false, nil
	}
	start := max(0, size-tailChunk)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return size, false, fmt.Errorf("read tail: %w", err)
	}
	i := bytes.LastIndexByte(buf, '\n')
	switch {
	case i == len(buf)-1:
		return size, false, nil // ends with a whole record
	case i < 0 && start > 0:
		return size, true, nil
	}
	keep := start + int64(i) + 1
	if err := f.Truncate(keep); err != nil {
		return size, true, fmt.Errorf("truncate the partial record: %w", err)
	}
	return keep, false, nil
}
