package tailer

import (
	"bufio"
	"bytes"
	"compress/gzip"
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
