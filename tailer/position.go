package tailer

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/stackprint/stackprint"
)

// Position is a resume point in a followed log: the file, by identity, and
// the offset just past the last complete line handed to the handler. Every
// event carries one (Event.File, Event.Offset and Event.Ident; PositionOf
// rebuilds it), and Options.Resume takes the positions a caller committed.
type Position struct {
	// Path is the followed path the file was read for: the configured path,
	// or for a glob input the matching file's path. It stays the same for
	// the lines of a rotated or archived generation of that path, so it is
	// the key to store a position under (one per input, or per file of a
	// glob input).
	Path string
	// Dev and Ino identify the file while it exists on one file system;
	// informative only (an inode is reused, a device id changes on a
	// remount): the fingerprint decides.
	Dev, Ino uint64
	// Fingerprint is the lowercase hex SHA-256 of the file's first FPLen
	// bytes (decompressed bytes for an archive): its header block and first
	// data line (Zeek TSV), or its first line (JSON), capped at 4 KiB.
	// FPLen grows until that line is complete; compare over FPLen bytes.
	Fingerprint string
	FPLen       int
	// Offset is just past the last complete line handed to the handler
	// (decompressed bytes for an archive).
	Offset int64
	// Archive is set when the line came from a gzip-compressed generation.
	Archive bool
}

// String renders p for logs.
func (p Position) String() string {
	fp := p.Fingerprint
	if len(fp) > 12 {
		fp = fp[:12]
	}
	s := fmt.Sprintf("%s@%d (dev %d ino %d fp %s/%d)", p.Path, p.Offset, p.Dev, p.Ino, fp, p.FPLen)
	if p.Archive {
		s += " gz"
	}
	return s
}

// Ident is the encoding of p's identity carried in Event.Ident:
// "v1:dev:ino:fplen:sha256hex" plus ":gz" for an archive.
func (p Position) Ident() string {
	s := "v1:" + strconv.FormatUint(p.Dev, 10) + ":" + strconv.FormatUint(p.Ino, 10) + ":" +
		strconv.Itoa(p.FPLen) + ":" + p.Fingerprint
	if p.Archive {
		s += ":gz"
	}
	return s
}

var errBadIdent = errors.New("not a tailer identity")

// PositionOf returns the resume position just past ev's line: ev.File,
// ev.Offset and the identity in ev.Ident.
func PositionOf(ev stackprint.Event) (Position, error) {
	p := Position{Path: ev.File, Offset: ev.Offset}
	parts := strings.Split(ev.Ident, ":")
	if len(parts) < 5 || len(parts) > 6 || parts[0] != "v1" || (len(parts) == 6 && parts[5] != "gz") {
		return p, fmt.Errorf("event from %s@%d: ident %q: %w", ev.File, ev.Offset, ev.Ident, errBadIdent)
	}
	var err1, err2, err3 error
	p.Dev, err1 = strconv.ParseUint(parts[1], 10, 64)
	p.Ino, err2 = strconv.ParseUint(parts[2], 10, 64)
	p.FPLen, err3 = strconv.Atoi(parts[3])
	p.Fingerprint = parts[4]
	p.Archive = len(parts) == 6
	if err := errors.Join(err1, err2, err3); err != nil || len(p.Fingerprint) != 64 || p.FPLen < 0 || p.FPLen > maxFPLen {
		return p, fmt.Errorf("event from %s@%d: ident %q: %w", ev.File, ev.Offset, ev.Ident, errBadIdent)
	}
	return p, nil
}

// maxFPLen caps the bytes a fingerprint covers.
const maxFPLen = 4096

// fpLength returns how many leading bytes of b (the first bytes of a file,
// at most maxFPLen) the fingerprint covers: through the first complete line
// that is neither a '#' header line nor blank; until there is one, through
// the last complete line. complete reports that it will not grow any more.
func fpLength(b []byte) (n int, complete bool) {
	i := 0
	for i < len(b) {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) > 0 && line[0] != '#' && len(bytes.TrimSpace(line)) > 0 {
			return i, true
		}
	}
	if len(b) >= maxFPLen {
		return maxFPLen, true
	}
	return i, false
}

// fingerprint is the content identity of a file.
type fingerprint struct {
	prefix   []byte // the first n bytes
	complete bool
	sum      string // hex sha256 of prefix
}

func newFingerprint(head []byte) fingerprint {
	n, complete := fpLength(head)
	fp := fingerprint{prefix: bytes.Clone(head[:n]), complete: complete}
	h := sha256.Sum256(fp.prefix)
	fp.sum = hex.EncodeToString(h[:])
	return fp
}

// same reports whether two fingerprints can be of the same file: one
// prefix is a prefix of the other, and they are not both empty.
func (fp fingerprint) same(o fingerprint) bool {
	if len(fp.prefix) == 0 || len(o.prefix) == 0 {
		return len(fp.prefix) == len(o.prefix)
	}
	if len(fp.prefix) <= len(o.prefix) {
		return bytes.HasPrefix(o.prefix, fp.prefix)
	}
	return bytes.HasPrefix(fp.prefix, o.prefix)
}

// readHead returns up to n leading bytes of the file at path, decompressed
// when gz.
func readHead(path string, gz bool, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	buf := make([]byte, n)
	k, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return buf[:k], fmt.Errorf("%s: %w", path, err)
	}
	return buf[:k], nil
}

// matchesPosition reports whether head (the file's leading bytes) has the
// fingerprint of p.
func matchesPosition(head []byte, p Position) bool {
	if len(head) < p.FPLen {
		return false
	}
	h := sha256.Sum256(head[:p.FPLen])
	return hex.EncodeToString(h[:]) == p.Fingerprint
}
