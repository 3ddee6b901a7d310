package db

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint/watch"
)

func TestWatchListCRUD(t *testing.T) {
	d, _ := openTest(t)
	a := watch.Entry{Addr: netip.MustParseAddrPort("192.0.2.10:443"), SNI: "WWW.Example.ORG.", Label: "web", Every: time.Minute, Origin: "cli"}
	b := watch.Entry{Addr: netip.MustParseAddrPort("[::ffff:192.0.2.11]:8443")}
	got, err := d.WatchAdd([]watch.Entry{a, b}, false)
	if err != nil || len(got) != 2 {
		t.Fatalf("add: %v %v", got, err)
	}
	list, err := d.WatchList()
	if err != nil || len(list) != 2 || list[0].Key() != "192.0.2.10:443/www.example.org" || list[1].Key() != "192.0.2.11:8443" || list[0].Added.IsZero() {
		t.Fatalf("list: %+v %v", list, err)
	}
	// Adding a watched target again fails, and nothing of the batch is written.
	c := watch.Entry{Addr: netip.MustParseAddrPort("192.0.2.12:443")}
	if _, err := d.WatchAdd([]watch.Entry{c, b}, false); !errors.Is(err, ErrWatchExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if list, _ := d.WatchList(); len(list) != 2 {
		t.Fatalf("a failed batch wrote %d entries", len(list))
	}
	// A bad entry names what is wrong.
	if _, err := d.WatchAdd([]watch.Entry{{Addr: netip.MustParseAddrPort("192.0.2.12:443"), Every: time.Millisecond}}, false); err == nil || !strings.Contains(err.Error(), "every 1ms") {
		t.Fatalf("bad every: %v", err)
	}
	// Update keeps the baseline; replace keeps it too.
	key := list[0].Key()
	found, err := d.WatchUpdate(key, func(e *watch.Entry) error {
		e.Baseline = &watch.Fingerprints{JARM: strings.Repeat("a", 62)}
		return nil
	})
	if !found || err != nil {
		t.Fatalf("update: %v %v", found, err)
	}
	a.Label = "web-new"
	if _, err := d.WatchAdd([]watch.Entry{a}, true); err != nil {
		t.Fatal(err)
	}
	list, _ = d.WatchList()
	if list[0].Label != "web-new" || list[0].Baseline == nil || list[0].Baseline.JARM != strings.Repeat("a", 62) {
		t.Fatalf("replace lost the baseline: %+v", list[0])
	}
	if _, err := d.WatchUpdate(key, func(e *watch.Entry) error { e.SNI = "other.example"; return nil }); err == nil {
		t.Fatal("an update moved the entry to another target")
	}
	if found, err := d.WatchUpdate("192.0.2.99:443", func(*watch.Entry) error { return nil }); found || err != nil {
		t.Fatalf("update of a missing entry: %v %v", found, err)
	}
	if st, err := d.Stats(); err != nil || st.Watched != 2 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	if found, err := d.WatchRemove(key); !found || err != nil {
		t.Fatalf("rm: %v %v", found, err)
	}
	if found, _ := d.WatchRemove(key); found {
		t.Fatal("removed twice")
	}
	if list, _ := d.WatchList(); len(list) != 1 {
		t.Fatalf("after rm: %+v", list)
	}
}

// The watch list survives a backup and a recover, and db check reads it.
func TestWatchListBackupRecoverCheck(t *testing.T) {
	d, _ := openTest(t)
	if _, err := d.WatchAdd([]watch.Entry{{Addr: netip.MustParseAddrPort("192.0.2.10:443"), Label: "web"}}, false); err != nil {
		t.Fatal(err)
	}
	if errs := d.Check(); len(errs) != 0 {
		t.Fatalf("check: %v", errs)
	}
	dir := t.TempDir()
	bak := filepath.Join(dir, "bak.db")
	if _, err := d.Backup(bak); err != nil {
		t.Fatal(err)
	}
	// A damaged entry is a check problem that names it.
	err := d.update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketWatch)).Put([]byte("192.0.2.11:443"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Check(); len(errs) != 1 || !strings.Contains(errs[0].Error(), `watch entry "192.0.2.11:443"`) {
		t.Fatalf("check of a damaged entry: %v", errs)
	}
	rec := filepath.Join(dir, "rec.db")
	if _, err := Recover(bak, rec); err != nil {
		t.Fatal(err)
	}
	r, err := Open(rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	list, err := r.WatchList()
	if err != nil || len(list) != 1 || list[0].Label != "web" {
		t.Fatalf("recovered list: %+v %v", list, err)
	}
}
