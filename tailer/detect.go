package tailer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DetectFormat reads the first non-blank line of a log (decompressed for
// .gz): a Zeek header or a JSON object without event_type is Zeek, one
// with event_type is Suricata eve.
func DetectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if t[0] == '{' && bytes.Contains(line, []byte(`"event_type"`)) {
				return FormatEve, nil
			}
			return FormatZeek, nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return FormatZeek, nil // empty: nothing to misread
			}
			return "", fmt.Errorf("%s: %w", path, err)
		}
	}
}

// Add adds the counts of one file's pass to t.
func (t *Stats) Add(s Stats) {
	t.Lines += s.Lines
	t.Events += s.Events
	t.ParseErrors += s.ParseErrors
	t.Skipped += s.Skipped
	t.LongLines += s.LongLines
}

// ReadFiles is ReadFile over paths in order, as input name, each in format
// (zeek or eve; "" = detected per file by DetectFormat). It returns the
// summed counts and stops at the first error.
func ReadFiles(ctx context.Context, name string, paths []string, format string, opts Options, h Handler) (Stats, error) {
	var total Stats
	for _, path := range paths {
		f := format
		if f == "" {
			var err error
			if f, err = DetectFormat(path); err != nil {
				return total, err
			}
		}
		st, err := ReadFile(ctx, Input{Name: name, Path: path, Format: f}, opts, h)
		total.Add(st)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
