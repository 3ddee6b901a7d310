package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackprint/stackprint/admin"
	"github.com/stackprint/stackprint/db"
)

// fillDB writes n JARM fingerprints into the DB file at path.
func fillDB(t *testing.T, path string, n int) {
	t.Helper()
	d, err := db.Open(path, db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("kind,value,label,source,confidence\n")
	for i := range n {
		fmt.Fprintf(&csv, "jarm,%062x,label-%d,test,high\n", i+1, i)
	}
	if _, err := d.Import(strings.NewReader(csv.String()), "fill.csv"); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// The adversarial pass's reproductions, against the real binary: a DB
// truncated to half made `run` and `db stats` die of SIGBUS ("fatal error:
// fault"); a 0-byte DB was silently re-created empty. Both now exit 1 with a
// message that says how to recover, and db check/recover/backup do it.
func TestCorruptDBIsRefusedWithAWayOut(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _, _ := labConfig(t, dir)
	dbPath := flatLab(dir).DB
	fillDB(t, dbPath, 3000)
	good, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	exitCode := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode() // -1 when killed by a signal
		}
		return 0
	}

	// Online backup while the daemon runs, through the admin socket.
	cmd, _ := startDaemon(t, cfgPath)
	waitFor(t, "the admin socket", 10e9, func() bool {
		c, err := admin.Dial(context.Background(), filepath.Join(dir, "admin.sock"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	backup := filepath.Join(dir, "backup.db")
	out, errOut, err := runBin(t, "db", "backup", "-c", cfgPath, backup)
	if err != nil || !strings.Contains(out, "running daemon") {
		t.Fatalf("online backup: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = runBin(t, "db", "check", "-c", cfgPath)
	if err != nil || !strings.Contains(out, "db ok") || !strings.Contains(out, "running daemon") {
		t.Fatalf("online check: %v\n%s%s", err, out, errOut)
	}
	stopDaemon(t, cmd)
	out, errOut, err = runBin(t, "db", "stats", "--db", backup, "--json")
	if err != nil || !strings.Contains(out, `"fingerprints": 3000`) {
		t.Fatalf("stats of the backup: %v\n%s%s", err, out, errOut)
	}

	// Truncated to half.
	if err := os.WriteFile(dbPath, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "-c", cfgPath}, {"db", "stats", "-c", cfgPath}, {"db", "check", "-c", cfgPath}} {
		_, errOut, err := runBin(t, args...)
		if exitCode(err) != 1 || !strings.Contains(errOut, "truncated") || !strings.Contains(errOut, "db recover") || strings.Contains(errOut, "fatal error") {
			t.Errorf("%s on a truncated DB: exit %d\n%s", args[:2], exitCode(err), errOut)
		}
	}
	recovered := filepath.Join(dir, "recovered.db")
	out, errOut, err = runBin(t, "db", "recover", "-c", cfgPath, recovered)
	if err != nil || !strings.Contains(out, "recovered") {
		t.Fatalf("db recover: %v\n%s%s", err, out, errOut)
	}
	t.Logf("recover: %s%s", out, errOut)
	if out, errOut, err := runBin(t, "db", "check", "--db", recovered); err != nil || !strings.Contains(out, "db ok") {
		t.Errorf("check of the recovered file: %v\n%s%s", err, out, errOut)
	}

	// Empty file: refused, never re-created.
	if err := os.WriteFile(dbPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = runBin(t, "run", "-c", cfgPath)
	if exitCode(err) != 1 || !strings.Contains(errOut, "empty") || !strings.Contains(errOut, "restore a backup") {
		t.Errorf("run on an empty DB: exit %d\n%s", exitCode(err), errOut)
	}
	if fi, _ := os.Stat(dbPath); fi.Size() != 0 {
		t.Errorf("run wrote the empty DB file: %d bytes", fi.Size())
	}
}
