package db

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

func TestResultCacheRoundTripsAndStartsEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.db")
	c, err := OpenResultCache(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := stackprint.Result{
		Target: stackprint.Target{IP: netip.MustParseAddr("192.0.2.1"), Port: 443, SNI: "a.example"},
		Status: stackprint.StatusOK, JARM: jarmA, JARMRaw: "x,y", Conns: 12,
		Cert: &stackprint.CertFacts{SHA256: "ab", Subject: "CN=a", SANs: []string{"a.example"}},
		HTTP: &stackprint.HTTPFacts{StatusCode: 200, Server: "nginx"},
		ATSF: &stackprint.ATSF{ID: "id", Hellos: []stackprint.ATSFHello{{Name: "h1", Raw: "r"}}},
	}
	k1, k2 := [12]byte{1}, [12]byte{2}
	if err := c.Apply([]CachedResult{{Key: k1, Tag: []byte("tag1"), Result: &r}, {Key: k2, Tag: []byte("tag2"), Result: &r}, {Key: k2}}); err != nil {
		t.Fatal(err)
	}
	tag, got, ok, err := c.Get(k1)
	if err != nil || !ok || string(tag) != "tag1" {
		t.Fatalf("Get = %q %v %v", tag, ok, err)
	}
	if got.Target != r.Target || got.JARM != r.JARM || got.JARMRaw != r.JARMRaw || got.Cert.Subject != "CN=a" || got.HTTP.Server != "nginx" || got.ATSF.Hellos[0].Raw != "r" {
		t.Fatalf("round trip: %+v", got)
	}
	if _, _, ok, _ := c.Get(k2); ok {
		t.Fatal("a deleted row is still there")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file left behind after Close: %v", err)
	}
	// A file left by a crash is emptied at the next open.
	c, err = OpenResultCache(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply([]CachedResult{{Key: k1, Tag: []byte("t"), Result: &r}}); err != nil {
		t.Fatal(err)
	}
	c.db.Close() // a crash: no Close
	c, err = OpenResultCache(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := c.Len(); n != 0 {
		t.Fatalf("%d rows from the previous run", n)
	}
}
