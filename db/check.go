package db

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt marks a DB file that cannot be used as it is. The message of
// an error wrapping it says how to recover.
var ErrCorrupt = errors.New("fingerprint db is damaged")

// recoverHint is the advice every ErrCorrupt message ends with.
func recoverHint(path string) string {
	return fmt.Sprintf("run `stackprint db check --db %s` for details; restore a backup (`stackprint db backup` makes them), "+
		"or copy what is readable into a new file with `stackprint db recover --db %s NEWFILE` and point db.path at it", path, path)
}

// corruptError wraps ErrCorrupt with what is wrong and how to recover.
func corruptError(path, what string) error {
	return fmt.Errorf("%w: %s: %s; %s", ErrCorrupt, path, what, recoverHint(path))
}

// The bbolt file layout (go.etcd.io/bbolt internal/common): every page
// starts with a 16-byte header; pages 0 and 1 are meta pages, the one with
// the higher txid and a valid checksum is current.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64 // magic … txid, checksum
	metaSumOffset  = 56 // the checksum covers the bytes before it
	noFreelist     = ^uint64(0)
)

// boltMeta is the part of a meta page CheckFile needs.
type boltMeta struct {
	pageSize        uint32
	root, freelist  uint64
	highWater, txid uint64
}

// parseMeta decodes and validates the meta page in b (header included).
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return boltMeta{}, errors.New("short meta page")
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.NativeEndian // bbolt writes its structs in host byte order
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("not a bbolt meta page (bad magic)")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	if h.Sum64() != le.Uint64(m[metaSumOffset:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	meta := boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		highWater: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	if meta.pageSize < 512 || meta.pageSize > 1<<20 || meta.pageSize&(meta.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("page size %d is not a power of two in 512..1 MiB", meta.pageSize)
	}
	if meta.highWater < 4 || meta.root >= meta.highWater || (meta.freelist >= meta.highWater && meta.freelist != noFreelist) {
		return boltMeta{}, fmt.Errorf("page ids out of range (root %d, freelist %d, %d pages)", meta.root, meta.freelist, meta.highWater)
	}
	return meta, nil
}

// CheckFile looks at path before bbolt maps it into memory: bbolt trusts
// the file, so a truncated one faults (SIGBUS) on the first read past its
// end and a garbled meta page panics. It reads the two meta pages, picks the
// one bbolt would use and checks that every page it names lies inside the
// file. A missing file is fine (Open creates it); an empty one is not: it
// was a DB once, and starting empty would lose its fingerprints and
// checkpoints without a word.
func CheckFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open fingerprint db %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("open fingerprint db %q: not a regular file (%s)", path, fi.Mode().Type())
	}
	size := fi.Size()
	if size == 0 {
		return fmt.Errorf("%w: %s: the file is empty (0 bytes), not starting with an empty DB in its place; "+
			"restore a backup (`stackprint db backup` makes them), or, if this is a new install, remove the empty file", ErrCorrupt, path)
	}
	// Meta page 0 is at offset 0 and tells the page size; meta page 1
	// follows it. bbolt does the same when it opens.
	buf := make([]byte, pageHeaderSize+metaSize)
	var metas []boltMeta
	var errs []error
	if _, err := f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read fingerprint db %q: %w", path, err)
	}
	m0, err0 := parseMeta(buf)
	pageSize := int64(os.Getpagesize())
	if err0 == nil {
		metas, pageSize = append(metas, m0), int64(m0.pageSize)
	} else {
		errs = append(errs, fmt.Errorf("meta page 0: %w", err0))
	}
	clear(buf)
	if _, err := f.ReadAt(buf, pageSize); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read fingerprint db %q: %w", path, err)
	}
	if m1, err := parseMeta(buf); err == nil && (err0 != nil || m1.pageSize == m0.pageSize) {
		metas = append(metas, m1)
	} else if err != nil {
		errs = append(errs, fmt.Errorf("meta page 1: %w", err))
	}
	if len(metas) == 0 {
		return corruptError(path, fmt.Sprintf("no valid meta page (%v)", errors.Join(errs...)))
	}
	cur := metas[0]
	if len(metas) == 2 && metas[1].txid > cur.txid {
		cur = metas[1]
	}
	if need := int64(cur.highWater) * int64(cur.pageSize); size < need {
		return corruptError(path, fmt.Sprintf("the file is %d bytes but its meta page names %d pages of %d bytes (%d bytes): it was truncated",
			size, cur.highWater, cur.pageSize, need))
	}
	return nil
}

// guard runs fn with memory faults turned into panics and turns a panic
// into an ErrCorrupt error: bbolt trusts its pages, so a garbled one makes
// it index out of range, fail an assertion or read unmapped memory.
func guard(path string, fn func() error) error {
	err := catch(fn)
	if pe, ok := err.(panicError); ok {
		return corruptError(path, "reading it failed: "+pe.msg)
	}
	return err
}

// panicError is a panic caught by catch.
type panicError struct{ msg string }

func (e panicError) Error() string { return e.msg }

// catch runs fn with memory faults turned into panics and returns a panic
// as a panicError.
func catch(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = panicError{fmt.Sprint(r)}
		}
	}()
	return fn()
}

// view and update are bolt's View and Update under guard.
func (d *DB) view(fn func(*bolt.Tx) error) error {
	return guard(d.path, func() error { return d.bolt.View(fn) })
}

func (d *DB) update(fn func(*bolt.Tx) error) error {
	return guard(d.path, func() error { return d.bolt.Update(fn) })
}

// maxCheckErrors bounds what Check collects from a badly damaged file.
const maxCheckErrors = 100

// Check runs bbolt's consistency check (every page reachable or free
// exactly once, keys in order, no page out of bounds) and reads every
// record. It holds a write transaction, so writers wait while it runs; the
// result is nil or the problems found, at most maxCheckErrors of them.
func (d *DB) Check() []error {
	var errs []error
	run := d.update
	if d.readOnly {
		run = d.view // a shared lock: no writer can run meanwhile
	}
	err := run(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		return errors.New("rollback") // nothing to commit
	})
	if err != nil && err.Error() != "rollback" {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if _, err := d.Stats(); err != nil { // decodes every fingerprint record
			errs = append(errs, err)
		}
		if err := d.view(checkWatch); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Backup writes a consistent snapshot of the DB to path through a read
// transaction, so it runs while the DB is in use: into a temporary file
// beside path, synced, then renamed over path.
func (d *DB) Backup(path string) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	var n int64
	err = d.view(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(tmp)
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return 0, fmt.Errorf("backup %q to %q: %w", d.path, path, err)
	}
	return n, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// RecoverReport says what Recover copied and what it could not read.
type RecoverReport struct {
	Buckets  int      // top-level buckets copied, fully or in part
	Keys     int      // key/value pairs copied
	Salvaged int      // fingerprint records found by scanning pages, not the tree
	Problems []string // what was skipped, and why
}

// Recover copies what is readable of the (damaged) DB file src into a new
// file dst, which must not exist, then opens dst as a DB so it gets every
// bucket and the current schema. A truncated src is read from a copy padded
// to the length its meta page names; a bucket whose pages are garbled is
// copied up to the first bad page. src itself is never written.
func Recover(src, dst string) (RecoverReport, error) {
	var rep RecoverReport
	if _, err := os.Lstat(dst); err == nil {
		return rep, fmt.Errorf("recover: %s exists; name a new file", dst)
	}
	work, cleanup, err := paddedCopy(src, filepath.Dir(dst))
	if err != nil {
		return rep, err
	}
	defer cleanup()
	in, err := bolt.Open(work, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultTimeout})
	if err != nil {
		return rep, fmt.Errorf("recover: open %s: %w", src, err)
	}
	defer in.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: DefaultTimeout})
	if err != nil {
		return rep, fmt.Errorf("recover: create %s: %w", dst, err)
	}
	var names [][]byte
	if err := catch(func() error {
		return in.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				names = append(names, append([]byte(nil), name...))
				return nil
			})
		})
	}); err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("bucket list: %v (copying the known buckets)", err))
		names = names[:0]
		for _, n := range schemaBuckets() {
			names = append(names, []byte(n))
		}
	}
	for _, name := range names {
		kvs, nested, problem := readBucket(in, [][]byte{name})
		if problem != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("bucket %s: %s", name, problem))
		}
		if len(kvs) == 0 && len(nested) == 0 && problem != "" {
			continue
		}
		err := out.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				if err := b.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			for _, sub := range nested {
				if _, err := b.CreateBucketIfNotExists(sub); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			out.Close()
			return rep, fmt.Errorf("recover: write %s: %w", dst, err)
		}
		rep.Buckets++
		rep.Keys += len(kvs)
		for _, sub := range nested {
			rep.Problems = append(rep.Problems, fmt.Sprintf("bucket %s: nested bucket %q created empty (the schema has none)", name, sub))
		}
	}
	if len(rep.Problems) > 0 {
		// The tree is damaged: records under a lost branch are still on
		// their leaf pages. Fingerprints are the data that cannot be
		// rebuilt, so they are salvaged from every leaf page.
		found, err := salvageFingerprints(work)
		if err != nil {
			rep.Problems = append(rep.Problems, "page scan: "+err.Error())
		}
		added := 0
		err = out.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte(bucketFingerprints))
			if err != nil {
				return err
			}
			for k, v := range found {
				if b.Get([]byte(k)) == nil {
					added++
					if err := b.Put([]byte(k), v.raw); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			out.Close()
			return rep, fmt.Errorf("recover: write %s: %w", dst, err)
		}
		rep.Keys += added
		rep.Salvaged = added
		if added > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("salvaged %d fingerprint records from leaf pages outside the readable tree: "+
				"the newest copy of each was kept, and an entry removed before the damage may be back; review them", added))
		}
	}
	// The near index is derived from the fingerprints: dropped here, it
	// is rebuilt by the Open below from what was recovered.
	err = out.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{bucketNearATSF, bucketNearJARM, bucketObsNear} {
			if tx.Bucket([]byte(name)) != nil {
				if err := tx.DeleteBucket([]byte(name)); err != nil {
					return err
				}
			}
		}
		if m := tx.Bucket([]byte(bucketMeta)); m != nil {
			for _, k := range []string{keyObsNearIndexed, keyObsNearCursor} {
				if err := m.Delete([]byte(k)); err != nil {
					return err
				}
			}
			return m.Delete([]byte(keyNearIndexed))
		}
		return nil
	})
	if err != nil {
		out.Close()
		return rep, fmt.Errorf("recover: reset the near index of %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return rep, fmt.Errorf("recover: close %s: %w", dst, err)
	}
	// Open adds missing buckets, rebuilds the near index and migrates an
	// older schema.
	d, err := Open(dst, Options{})
	if err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	return rep, d.Close()
}

// readBucket reads the key/value pairs of the bucket at path until the end
// or the first unreadable page; nested names the sub-buckets.
func readBucket(in *bolt.DB, path [][]byte) (kvs [][2][]byte, nested [][]byte, problem string) {
	err := catch(func() error {
		return in.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(path[0])
			if b == nil {
				return errors.New("missing")
			}
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					nested = append(nested, append([]byte(nil), k...))
					continue
				}
				kvs = append(kvs, [2][]byte{append([]byte(nil), k...), append([]byte(nil), v...)})
			}
			return nil
		})
	})
	if err != nil {
		return kvs, nested, fmt.Sprintf("copied %d keys, then: %v", len(kvs), err)
	}
	return kvs, nested, ""
}

// paddedCopy copies src into dir and, when src is shorter than its meta
// page says, pads the copy with zero pages, so bbolt reads zeros (which it
// reports as bad pages) instead of faulting past the end of the file.
func paddedCopy(src, dir string) (string, func(), error) {
	in, err := os.Open(src)
	if err != nil {
		return "", nil, fmt.Errorf("recover: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, ".stackprint-recover-*.db")
	if err != nil {
		return "", nil, fmt.Errorf("recover: %w", err)
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	size, err := io.Copy(tmp, in)
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("recover: copy %s: %w", src, err)
	}
	if size == 0 {
		cleanup()
		return "", nil, fmt.Errorf("recover: %s is empty: there is nothing to recover; restore a backup", src)
	}
	if err := CheckFile(tmp.Name()); err != nil {
		need, ok := metaLength(tmp.Name())
		if !ok {
			cleanup()
			return "", nil, fmt.Errorf("recover: %s: no valid meta page, nothing bbolt can read; restore a backup", src)
		}
		if need > size {
			if err := os.Truncate(tmp.Name(), need); err != nil {
				cleanup()
				return "", nil, fmt.Errorf("recover: %w", err)
			}
		}
	}
	return tmp.Name(), cleanup, nil
}

// metaLength returns the file length the current meta page of path names.
func metaLength(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	buf := make([]byte, pageHeaderSize+metaSize)
	var best *boltMeta
	off := int64(0)
	for range 2 {
		clear(buf)
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, false
		}
		if m, err := parseMeta(buf); err == nil {
			if best == nil || m.txid > best.txid {
				best = &m
			}
			off = int64(m.pageSize)
		} else if off == 0 {
			off = int64(os.Getpagesize())
		}
	}
	if best == nil {
		return 0, false
	}
	return int64(best.highWater) * int64(best.pageSize), true
}

// salvaged is one fingerprint record found on a page.
type salvaged struct {
	raw     []byte
	updated int64
}

// salvageFingerprints reads every leaf page of the bbolt file at path and
// keeps the values that are valid fingerprint records under their own key
// (kind NUL value), the newest copy of each: freed pages hold older ones.
func salvageFingerprints(path string) (map[string]salvaged, error) {
	n, ok := metaLength(path)
	if !ok {
		return nil, errors.New("no valid meta page")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := boltMetaOf(f)
	ps := int64(m.pageSize)
	out := map[string]salvaged{}
	hdr := make([]byte, pageHeaderSize)
	for id := int64(2); (id+1)*ps <= n; id++ {
		if _, err := f.ReadAt(hdr, id*ps); err != nil {
			return out, err
		}
		flags, count := binary.NativeEndian.Uint16(hdr[8:]), int(binary.NativeEndian.Uint16(hdr[10:]))
		overflow := int64(binary.NativeEndian.Uint32(hdr[12:]))
		if flags != 0x02 || count == 0 || (id+1+overflow)*ps > n {
			continue // not a leaf page (or a bogus one)
		}
		page := make([]byte, (1+overflow)*ps)
		if _, err := f.ReadAt(page, id*ps); err != nil {
			return out, err
		}
		for i := range count {
			e := pageHeaderSize + i*16 // leaf element: flags, pos, ksize, vsize
			if e+16 > len(page) {
				break
			}
			eflags := binary.NativeEndian.Uint32(page[e:])
			pos, ks, vs := int(binary.NativeEndian.Uint32(page[e+4:])), int(binary.NativeEndian.Uint32(page[e+8:])), int(binary.NativeEndian.Uint32(page[e+12:]))
			start := e + pos
			if eflags != 0 || pos <= 0 || ks <= 0 || vs <= 0 || start+ks+vs > len(page) || start+ks+vs < start {
				continue
			}
			k, v := page[start:start+ks], page[start+ks:start+ks+vs]
			var r Record
			if json.Unmarshal(v, &r) != nil || string(key(r.Kind, r.Value)) != string(k) || ValidateRecord(&r) != nil {
				continue
			}
			if old, ok := out[string(k)]; !ok || r.Updated.UnixNano() > old.updated {
				out[string(k)] = salvaged{raw: append([]byte(nil), v...), updated: r.Updated.UnixNano()}
			}
		}
		id += overflow
	}
	return out, nil
}

// boltMetaOf returns the current meta page of f (metaLength checked it).
func boltMetaOf(f *os.File) boltMeta {
	buf := make([]byte, pageHeaderSize+metaSize)
	var best boltMeta
	off := int64(0)
	for range 2 {
		clear(buf)
		_, _ = f.ReadAt(buf, off)
		if m, err := parseMeta(buf); err == nil {
			if m.txid >= best.txid {
				best = m
			}
			off = int64(m.pageSize)
		} else if off == 0 {
			off = int64(os.Getpagesize())
		}
	}
	return best
}
