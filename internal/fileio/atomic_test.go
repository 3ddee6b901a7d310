package fileio

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "intel.dat")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	err := WriteAtomic(path, 0o640, func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err })
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if b, _ := os.ReadFile(path); string(b) != "new\n" || os.SameFile(before, after) || after.Mode().Perm() != 0o640 {
		t.Errorf("content %q, same inode %v, mode %v", b, os.SameFile(before, after), after.Mode())
	}
	// A failed write leaves the old file and no temporary behind.
	err = WriteAtomic(path, 0o640, func(w io.Writer) error { io.WriteString(w, "partial"); return os.ErrClosed })
	if err == nil {
		t.Fatal("error lost")
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Errorf("failed write changed the file: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
}

func TestWriteFileAtomicIgnoresUmask(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feed.dat")
	if err := WriteFileAtomic(path, []byte("x\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	// Zeek and Suricata run as other users: the mode asked for is the mode
	// the file gets.
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o666 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
}
