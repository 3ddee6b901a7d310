package enrich

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sync"
)

// ResultFile is the daemon's ResultStore: one block per dedup index entry
// at offset entry × block, so the file is bounded by the index capacity,
// not by the targets seen; a record longer than a block continues in
// extension blocks after the direct ones (reused as records are
// replaced). It is read and written with pread and pwrite: nothing of it
// is mapped, so its pages are the kernel's page cache, never the
// process's RSS. A cache: emptied at every open, removed at close, never
// synced (a write lost in a crash costs a probe, never a verdict).
//
// A record, spread over its blocks:
//
//	crc32c of the rest | length | extension block numbers…
//	key (12) | expiry (8) | generation (8) | tag | result | matches
//
// A read checks the checksum (a torn read while the slot is rewritten
// fails it), the key and the expiry of the index entry it was asked for
// (a stale record of the slot's previous key, or of an earlier verdict of
// the same key, never passes); the pipeline then compares the exact tag.
type ResultFile struct {
	f     *os.File
	path  string
	block int
	ext   int64 // offset of extension block 0: after the direct blocks
	// maxExt is how many extension blocks a record may use; a longer
	// record is not stored (its entry lives as long as it stays hot).
	maxExt int

	mu     sync.Mutex          // the writers' state below
	chains map[uint32][]uint32 // entry → its record's extension blocks
	free   []uint32            // extension blocks not in use
	next   uint32              // extension blocks ever used
	buf    []byte
	tooBig uint64

	bufs sync.Pool // *[]byte of one block, for reads
}

// ResultBlock is the block size for a daemon probing kinds: a JARM result
// is about 600 bytes, one with an ATSF answer set or a certificate 2–4 KiB.
func ResultBlock(kinds []string) int {
	for _, k := range kinds {
		if k != "jarm" && k != "http" {
			return 4096
		}
	}
	return 1024
}

const (
	recordHeader = 8 // crc32c, length
	maxRecord    = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenResultFile creates path afresh (removing what a previous run left)
// for an index of capacity entries, in blocks of block bytes (512..65536).
func OpenResultFile(path string, capacity, block int) (*ResultFile, error) {
	if block < 512 || block > maxRecord || capacity < 1 {
		return nil, fmt.Errorf("result file %q: block %d, capacity %d: want a block of 512..65536 bytes and a capacity >= 1", path, block, capacity)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("result file %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open result file %q: %w", path, err)
	}
	return &ResultFile{
		f: f, path: path, block: block,
		ext:    int64(capacity+1) * int64(block), // entries are 1..capacity
		maxExt: min(maxRecord/block, (block-recordHeader)/16),
		chains: map[uint32][]uint32{},
		bufs:   sync.Pool{New: func() any { b := make([]byte, block); return &b }},
	}, nil
}

// ApplyResults writes the records of ops in order (a later one for the
// same entry wins).
func (f *ResultFile) ApplyResults(ops []ResultOp) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range ops {
		if err := f.write(&ops[i]); err != nil {
			return fmt.Errorf("result file %q: entry %d: %w", f.path, ops[i].Slot, err)
		}
	}
	return nil
}

func (f *ResultFile) write(op *ResultOp) error {
	if op.Slot == 0 || int64(op.Slot)*int64(f.block) >= f.ext {
		return fmt.Errorf("entry out of range")
	}
	// Encode with room for the extension list, then place it.
	body := f.buf[:0]
	body = append(body, make([]byte, recordHeader)...)
	kb := op.Key.Bytes()
	body = append(body, kb[:]...)
	body = binary.BigEndian.AppendUint64(body, uint64(op.Expires))
	body = binary.BigEndian.AppendUint64(body, op.Gen)
	body = appendStr(body, string(op.Tag))
	body = appendResult(body, &op.Result)
	body = appendMatches(body, op.Matches)
	f.buf = body
	// Extension blocks needed, counting their numbers (4 bytes each) in
	// the first block.
	n := 0
	for len(body)+4*n > f.block*(n+1) {
		n++
	}
	old := f.chains[op.Slot]
	f.free = append(f.free, old...)
	delete(f.chains, op.Slot)
	if n > f.maxExt {
		// Too long to keep: an empty record, so the slot's old one is
		// never read for it.
		f.tooBig++
		var empty [recordHeader]byte
		binary.BigEndian.PutUint32(empty[0:], crc32.Checksum(empty[4:], castagnoli))
		_, err := f.f.WriteAt(empty[:], int64(op.Slot)*int64(f.block))
		return err
	}
	chain := make([]uint32, n)
	for i := range chain {
		if k := len(f.free); k > 0 {
			chain[i], f.free = f.free[k-1], f.free[:k-1]
		} else {
			chain[i] = f.next
			f.next++
		}
	}
	if n > 0 {
		f.chains[op.Slot] = chain
	}
	rec := make([]byte, 0, len(body)+4*n)
	rec = append(rec, body[:recordHeader]...)
	for _, c := range chain {
		rec = binary.BigEndian.AppendUint32(rec, c)
	}
	rec = append(rec, body[recordHeader:]...)
	binary.BigEndian.PutUint32(rec[4:], uint32(len(rec)))
	binary.BigEndian.PutUint32(rec[0:], crc32.Checksum(rec[4:], castagnoli))
	first := rec[:min(len(rec), f.block)]
	if _, err := f.f.WriteAt(first, int64(op.Slot)*int64(f.block)); err != nil {
		return err
	}
	for i, c := range chain {
		part := rec[f.block*(i+1) : min(len(rec), f.block*(i+2))]
		if _, err := f.f.WriteAt(part, f.ext+int64(c)*int64(f.block)); err != nil {
			return err
		}
	}
	return nil
}

// GetResult reads the record of entry slot if it holds key k with the
// given expiry (ok false otherwise: a stale or lost record).
func (f *ResultFile) GetResult(slot uint32, k Key, expires int64) (Stored, bool, error) {
	var st Stored
	if slot == 0 || int64(slot)*int64(f.block) >= f.ext {
		return st, false, nil
	}
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	buf := *bp
	n, err := f.f.ReadAt(buf, int64(slot)*int64(f.block))
	if err != nil && !errors.Is(err, io.EOF) {
		return st, false, fmt.Errorf("result file %q: %w", f.path, err)
	}
	buf = buf[:n]
	if n < recordHeader+12+16 {
		return st, false, nil // never written
	}
	l := int(binary.BigEndian.Uint32(buf[4:]))
	if l < recordHeader+12+16 || l > maxRecord+f.block {
		return st, false, nil
	}
	exts := 0
	for l > f.block*(exts+1) {
		exts++
	}
	if l > f.block {
		if exts > f.maxExt || recordHeader+4*exts > len(buf) {
			return st, false, nil
		}
		rec := make([]byte, l)
		copy(rec, buf)
		for i := range exts {
			c := binary.BigEndian.Uint32(buf[recordHeader+4*i:])
			part := rec[f.block*(i+1) : min(l, f.block*(i+2))]
			if _, err := f.f.ReadAt(part, f.ext+int64(c)*int64(f.block)); err != nil {
				if errors.Is(err, io.EOF) {
					return st, false, nil
				}
				return st, false, fmt.Errorf("result file %q: %w", f.path, err)
			}
		}
		buf = rec
	} else if l > len(buf) {
		return st, false, nil
	}
	buf = buf[:l]
	if crc32.Checksum(buf[4:], castagnoli) != binary.BigEndian.Uint32(buf) {
		return st, false, nil // torn by a concurrent rewrite, or never complete
	}
	p := buf[recordHeader+4*exts:]
	kb := k.Bytes()
	if string(p[:12]) != string(kb[:]) || int64(binary.BigEndian.Uint64(p[12:])) != expires {
		return st, false, nil
	}
	st.Gen = binary.BigEndian.Uint64(p[20:])
	r := reader{s: string(p[28:])} // one allocation for all the strings
	st.Tag = []byte(r.str())
	st.Result = r.result()
	st.Matches = r.matches()
	if r.err != nil || r.s != "" {
		return Stored{}, false, fmt.Errorf("result file %q: entry %d: %w", f.path, slot, errBadRecord)
	}
	return st, true, nil
}

// TooBig counts the results not stored for their length.
func (f *ResultFile) TooBig() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tooBig
}

// Path is the file's path.
func (f *ResultFile) Path() string { return f.path }

// Close closes and removes the file: nothing in it outlives the process.
func (f *ResultFile) Close() error {
	err := f.f.Close()
	if rerr := os.Remove(f.path); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	return err
}
