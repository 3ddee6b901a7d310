package db

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const checkRecords = 3000

// filledDB writes a DB of checkRecords JARM fingerprints and closes it.
func filledDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fp.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("kind,value,label,source,confidence\n")
	for i := range checkRecords {
		fmt.Fprintf(&csv, "jarm,%062x,label-%d,test,high\n", i+1, i)
	}
	if rep, err := d.Import(strings.NewReader(csv.String()), "fill.csv"); err != nil || rep.Accepted != checkRecords {
		t.Fatalf("fill: %+v %v", rep, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantCorrupt(t *testing.T, err error, wants ...string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// A zero-length file was silently re-created empty, losing the
// fingerprints and checkpoints it should have held.
func TestOpenRefusesAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	wantCorrupt(t, err, "empty", "restore a backup", "remove the empty file")
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("the empty file was written: %d bytes", fi.Size())
	}
}

// A DB truncated to half its size made `run` and `db stats` die of SIGBUS.
// Open refuses it before bbolt maps it; Recover copies what is left.
func TestTruncatedDBIsRefusedAndRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fp.db")
	src := filledDB(t)
	b, _ := os.ReadFile(src)
	if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	wantCorrupt(t, err, "truncated", "db check", "db recover")
	_, err = Open(path, Options{ReadOnly: true})
	wantCorrupt(t, err, "truncated")

	dst := filepath.Join(t.TempDir(), "recovered.db")
	rep, err := Recover(path, dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered %d keys in %d buckets; problems: %q", rep.Keys, rep.Buckets, rep.Problems)
	d, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if errs := d.Check(); len(errs) != 0 {
		t.Errorf("the recovered DB fails its check: %v", errs)
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Fingerprints == 0 || st.Fingerprints > checkRecords {
		t.Errorf("recovered %d fingerprints of %d", st.Fingerprints, checkRecords)
	}
	if _, err := Recover(path, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Recover over an existing file: %v", err)
	}
}

// leafPages lists the ids of the leaf pages of a bbolt file.
func leafPages(t *testing.T, b []byte) []int {
	t.Helper()
	m, err := parseMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(m.pageSize)
	var out []int
	for id := 2; (id+1)*ps <= len(b); id++ {
		if flags := binary.NativeEndian.Uint16(b[id*ps+8:]); flags == 0x02 && binary.NativeEndian.Uint16(b[id*ps+10:]) > 3 {
			out = append(out, id)
		}
	}
	return out
}

// Garbled pages made bbolt panic (slice bounds out of range, assertion).
// Now reads fail with ErrCorrupt, Check names the damage and Recover copies
// the keys on the other pages.
func TestGarbledPagesAreAnErrorNotACrash(t *testing.T) {
	path := filledDB(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := parseMeta(b)
	ps := int(m.pageSize)
	leaves := leafPages(t, b)
	if len(leaves) < 10 {
		t.Fatalf("only %d leaf pages", len(leaves))
	}
	// Garble the element headers of one leaf page in the middle: its
	// keys point anywhere.
	rng := rand.New(rand.NewPCG(1, 2))
	victim := leaves[len(leaves)/2]
	for i := victim*ps + 16; i < victim*ps+16+16*20; i++ {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	d, err := Open(path, Options{})
	if err != nil {
		wantCorrupt(t, err) // a garbled page may already show when opening
	} else {
		_, err := d.Stats()
		if err == nil {
			_, err = d.List("")
		}
		if err == nil {
			t.Fatal("reading every record of a garbled DB gave no error")
		}
		wantCorrupt(t, err, "db recover")
		if errs := d.Check(); len(errs) == 0 {
			t.Error("Check found nothing wrong in a garbled DB")
		}
		d.Close()
	}

	dst := filepath.Join(t.TempDir(), "recovered.db")
	rep, err := Recover(path, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 {
		t.Error("Recover reported no problem")
	}
	r, err := Open(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered %d of %d fingerprints; problems: %q", st.Fingerprints, checkRecords, rep.Problems)
	if st.Fingerprints == 0 {
		t.Error("nothing recovered")
	}
}

func TestBackupIsAConsistentOpenableCopy(t *testing.T) {
	src := filledDB(t)
	d, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dst := filepath.Join(t.TempDir(), "backup.db")
	n, err := d.Backup(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != n || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v (wrote %d)", fi, err, n)
	}
	b, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st, err := b.Stats(); err != nil || st.Fingerprints != checkRecords {
		t.Errorf("backup holds %d fingerprints (%v), want %d", st.Fingerprints, err, checkRecords)
	}
	if errs := b.Check(); len(errs) != 0 {
		t.Errorf("backup fails its check: %v", errs)
	}
}
