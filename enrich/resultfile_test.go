package enrich

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// fill sets every settable field of v, recursively, to a value that is
// not its zero: strings name their field, numbers count, slices hold two
// elements, pointers point at filled values.
func fill(t *testing.T, v reflect.Value, name string, n *int) {
	*n++
	switch v.Interface().(type) {
	case time.Time:
		v.Set(reflect.ValueOf(time.Unix(1700000000+int64(*n), int64(*n)).In(time.FixedZone("", 3600))))
		return
	case netip.Addr:
		v.Set(reflect.ValueOf(netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", *n))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d", name, *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n) * 1001)
	case reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(uint64(*n) * 7)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), name, n)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), fmt.Sprintf("%s[%d]", name, i), n)
		}
		v.Set(s)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), name+"."+f.Name, n)
			}
		}
	default:
		t.Fatalf("%s: no filler for %s", name, v.Type())
	}
}

// TestResultCodecKeepsEveryField: a result and matches with every field
// set come back equal; a field added to the types and not to the codec
// fails here.
func TestResultCodecKeepsEveryField(t *testing.T) {
	var r stackprint.Result
	var ms []stackprint.Match
	n := 0
	fill(t, reflect.ValueOf(&r).Elem(), "Result", &n)
	fill(t, reflect.ValueOf(&ms).Elem(), "Matches", &n)
	b := appendMatches(appendResult(nil, &r), ms)
	rd := reader{s: string(b)}
	got, gotM := rd.result(), rd.matches()
	if rd.err != nil || rd.s != "" {
		t.Fatalf("decode: %v, %d bytes left", rd.err, len(rd.s))
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("result changed:\n got %+v\nwant %+v", got, r)
	}
	if !reflect.DeepEqual(gotM, ms) {
		t.Fatalf("matches changed:\n got %+v\nwant %+v", gotM, ms)
	}
	// A zero result (the failures) and an IPv4 target with a zone-free
	// local time.
	for _, r := range []stackprint.Result{{}, {Target: stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 443},
		Started: time.Unix(1700000000, 5), Status: stackprint.StatusTimeout, ATSF: &stackprint.ATSF{}}} {
		rd := reader{s: string(appendResult(nil, &r))}
		if got := rd.result(); rd.err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("%+v came back %+v (%v)", r, got, rd.err)
		}
	}
	// Every prefix of a record is refused, never read as a shorter one.
	for i := range len(b) {
		rd := reader{s: string(b[:i])}
		rd.result()
		rd.matches()
		if rd.err == nil {
			t.Fatalf("a record cut at %d of %d bytes decoded", i, len(b))
		}
	}
}

func openTestFile(t *testing.T, capacity, block int) *ResultFile {
	t.Helper()
	f, err := OpenResultFile(filepath.Join(t.TempDir(), "state.db.results"), capacity, block)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func resultOp(slot uint32, i int, sans int) ResultOp {
	t := stackprint.Target{IP: netip.AddrFrom4([4]byte{127, 9, byte(i >> 8), byte(i)}), Port: 443}
	r := stackprint.Result{Target: t, Status: stackprint.StatusOK, JARM: badJARM, Started: time.Unix(1700000000, 0)}
	if sans > 0 {
		r.Cert = &stackprint.CertFacts{SHA256: "aa"}
		for j := range sans {
			r.Cert.SANs = append(r.Cert.SANs, fmt.Sprintf("name%05d.example.com", j))
		}
	}
	return ResultOp{Slot: slot, Key: Key{H1: uint64(i)*0x9E3779B97F4A7C15 + 1, H2: uint32(i)}, Expires: int64(1e18) + int64(i),
		Stored: Stored{Tag: tagOf(cacheKey{t: t}), Result: r, Matches: []stackprint.Match{{Kind: "jarm", Value: badJARM, Label: fmt.Sprint("l", i)}}, Gen: uint64(i)}}
}

func mustGet(t *testing.T, f *ResultFile, op ResultOp) {
	t.Helper()
	st, ok, err := f.GetResult(op.Slot, op.Key, op.Expires)
	if err != nil || !ok {
		t.Fatalf("slot %d: ok %v, err %v", op.Slot, ok, err)
	}
	if !reflect.DeepEqual(st, op.Stored) {
		t.Fatalf("slot %d:\n got %+v\nwant %+v", op.Slot, st, op.Stored)
	}
}

func mustMiss(t *testing.T, f *ResultFile, slot uint32, k Key, expires int64, why string) {
	t.Helper()
	if _, ok, err := f.GetResult(slot, k, expires); ok || err != nil {
		t.Fatalf("slot %d (%s): ok %v, err %v; want a miss", slot, why, ok, err)
	}
}

// TestResultFileReadsOnlyWhatWasWrittenForTheEntry: a record comes back
// for its slot, key and expiry only: a slot never written, another key,
// another verdict of the same key (another expiry) or a slot taken over
// by the next key all miss.
func TestResultFileReadsOnlyWhatWasWrittenForTheEntry(t *testing.T) {
	f := openTestFile(t, 100, 1024)
	a, b := resultOp(1, 1, 0), resultOp(2, 2, 0)
	if err := f.ApplyResults([]ResultOp{a, b}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, f, a)
	mustGet(t, f, b)
	mustMiss(t, f, 3, a.Key, a.Expires, "never written")
	mustMiss(t, f, 100, a.Key, a.Expires, "last slot, never written")
	mustMiss(t, f, 101, a.Key, a.Expires, "past the capacity")
	mustMiss(t, f, 1, b.Key, b.Expires, "another key")
	mustMiss(t, f, 1, a.Key, a.Expires+1, "an older verdict")
	c := resultOp(1, 3, 0) // the next key of slot 1
	if err := f.ApplyResults([]ResultOp{c}); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, f, 1, a.Key, a.Expires, "slot taken over")
	mustGet(t, f, c)
	// A byte changed under a record (a read torn by a rewrite): refused.
	raw, err := os.OpenFile(f.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.WriteAt([]byte{0xff}, 2*1024+60); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, f, 2, b.Key, b.Expires, "damaged")
	if _, err := OpenResultFile(f.Path(), 0, 1024); err == nil {
		t.Fatal("capacity 0 accepted")
	}
}

// TestResultFileIsBoundedByItsCapacity: records longer than a block use
// extension blocks, given back when their slot is rewritten; after ten
// rounds of every slot rewritten with records of changing length, the
// file is no larger than after the first, and a record past the longest
// kept is not stored (nor the slot's previous one read for it).
func TestResultFileIsBoundedByItsCapacity(t *testing.T) {
	const capacity = 64
	f := openTestFile(t, capacity, 1024)
	size := func() int64 {
		fi, err := os.Stat(f.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	var first int64
	for round := range 10 {
		var ops []ResultOp
		for s := uint32(1); s <= capacity; s++ {
			sans := int(s+uint32(round)) % 4 * 40 // 0..120 names: 1..4 blocks
			ops = append(ops, resultOp(s, round*1000+int(s), sans))
		}
		if err := f.ApplyResults(ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			mustGet(t, f, op)
		}
		if round == 0 {
			first = size()
		}
	}
	if first > int64(capacity+1)*1024+int64(capacity)*3*1024 {
		t.Fatalf("file of %d bytes after one round", first)
	}
	// Rounds shift lengths, so the extension blocks in use at once stay
	// within one round's: the high-water mark holds.
	if s := size(); s > first+3*1024*capacity/4 {
		t.Fatalf("file grew from %d to %d bytes over ten rounds", first, s)
	}
	huge := resultOp(5, 99999, 4000) // ~100 KiB of names
	if err := f.ApplyResults([]ResultOp{huge}); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, f, 5, huge.Key, huge.Expires, "too long")
	if f.TooBig() != 1 {
		t.Fatalf("TooBig %d, want 1", f.TooBig())
	}
	if !strings.HasSuffix(f.Path(), ".results") {
		t.Fatal(f.Path())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.Path()); !os.IsNotExist(err) {
		t.Fatalf("the file outlived Close: %v", err)
	}
}

// TestResultFileTornReadsNeverPass: readers race a writer that keeps
// rewriting the same slots with other keys and lengths (one and several
// blocks); every read that succeeds returns exactly the record written
// for the key and expiry it asked for.
func TestResultFileTornReadsNeverPass(t *testing.T) {
	f := openTestFile(t, 8, 1024)
	ops := make([]ResultOp, 40)
	for i := range ops {
		ops[i] = resultOp(uint32(1+i%4), i, i%3*50)
	}
	done := make(chan struct{})
	var hits, misses atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				op := ops[j%len(ops)]
				st, ok, err := f.GetResult(op.Slot, op.Key, op.Expires)
				switch {
				case err != nil:
					t.Errorf("read: %v", err)
					return
				case ok && !reflect.DeepEqual(st, op.Stored):
					t.Errorf("slot %d gave another record for key %v", op.Slot, op.Key)
					return
				case ok:
					hits.Add(1)
				default:
					misses.Add(1)
				}
			}
		})
	}
	for round := range 300 {
		if err := f.ApplyResults(ops[round%10*4 : round%10*4+4]); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	t.Logf("%d reads found their record, %d did not", hits.Load(), misses.Load())
}
