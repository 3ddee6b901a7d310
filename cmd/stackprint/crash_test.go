package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackprint/stackprint/internal/lab"
)

// TestCrashRecoverySIGKILL runs the built daemon over Zeek and eve logs
// that are appended to and rotated while it is SIGKILLed at random moments
// and restarted. Every line names a connection to a server in the DB, so
// "no line lost" means: every connection id written appears in an alert.
// Replays are allowed (at least once) but must carry the same alert_id.
func TestCrashRecoverySIGKILL(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 5
	}
	dir := t.TempDir()
	rsa := mustCert(t, "rsa")
	c2a := mustServer(t, "c2a", "127.0.0.71", &tls.Config{Certificates: []tls.Certificate{rsa}, MaxVersion: tls.VersionTLS12})
	c2b := mustServer(t, "c2b", "127.0.0.72", &tls.Config{Certificates: []tls.Certificate{rsa}})
	benign := mustServer(t, "benign", "127.0.0.73", &tls.Config{Certificates: []tls.Certificate{mustCert(t, "ecdsa")}, NextProtos: []string{"h2"}})
	ja, jb := jarmOf(t, c2a), jarmOf(t, c2b)
	if jarmOf(t, benign) == ja || jarmOf(t, benign) == jb {
		t.Fatal("benign server shares a JARM with a C2")
	}
	dbPath := filepath.Join(dir, "state", "stackprint.db")
	for i, j := range []string{ja, jb} {
		if out, errOut, err := runBin(t, "db", "add", "--db", dbPath, "--kind", "jarm", "--value", j,
			"--label", fmt.Sprintf("crash-c2-%d", i), "--confidence", "high"); err != nil {
			t.Fatalf("db add: %v %s %s", err, out, errOut)
		}
	}
	zeekDir := filepath.Join(dir, "zeek")
	if err := os.MkdirAll(zeekDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sslLog, eveLog := filepath.Join(zeekDir, "ssl.log"), filepath.Join(dir, "eve.json")
	alertsPath := filepath.Join(dir, "out", "alerts.ndjson")
	cfgPath := filepath.Join(dir, "stackprint.yaml")
	cfg := configText(t, labPaths{DB: dbPath, SSL: sslLog, Conn: filepath.Join(zeekDir, "conn.log"), Eve: eveLog,
		Alerts: alertsPath, Fingerprints: filepath.Join(dir, "out", "stackprint.log")},
		"allow: []", "allow: [127.0.0.0/8]",
		"probes_per_second: 5", "probes_per_second: 100",
		"burst: 5", "burst: 20")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// The writer: lines to both logs, rotating ssl.log by rename+create and
	// eve.json by rename (Suricata-style), until told to stop.
	targets := []netip.AddrPort{c2a.Addr, c2b.Addr}
	var mu sync.Mutex
	var written []string
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- func() error {
			rnd := rand.New(rand.NewPCG(1, 2))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return nil
				default:
				}
				uid := fmt.Sprintf("Ccrash%05d", n)
				tgt := targets[n%len(targets)]
				var err error
				if n%3 == 2 {
					line := fmt.Sprintf(`{"timestamp":"2026-11-27T08:00:00.000000+0000","flow_id":%d,"event_type":"tls","src_ip":"127.0.0.1","src_port":%d,"dest_ip":"%s","dest_port":%d,"proto":"TCP","tls":{"sni":"c2.crash.test"}}`+"\n",
						100000+n, 20000+n%40000, tgt.Addr(), tgt.Port())
					uid = fmt.Sprint(100000 + n)
					err = appendFile(eveLog, line)
				} else {
					_, statErr := os.Stat(sslLog)
					err = lab.WriteZeekSSL(sslLog, []lab.Conn{{UID: uid, Orig: fmt.Sprintf("127.0.0.1:%d", 20000+n%40000), Resp: tgt, SNI: "c2.crash.test"}}, os.IsNotExist(statErr))
				}
				if err != nil {
					return err
				}
				mu.Lock()
				written = append(written, uid)
				mu.Unlock()
				if n > 0 && n%150 == 0 {
					if err := os.Rename(sslLog, fmt.Sprintf("%s.%d", sslLog, n)); err != nil {
						return err
					}
				}
				if n > 0 && n%400 == 0 {
					if err := os.Rename(eveLog, fmt.Sprintf("%s.%d", eveLog, n)); err != nil {
						return err
					}
				}
				time.Sleep(time.Duration(1+rnd.IntN(3)) * time.Millisecond)
			}
		}()
	}()

	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(binPath, "run", "-c", cfgPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range kills {
		cmd, _ := start()
		time.Sleep(time.Duration(150+rnd.IntN(600)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if i == kills/2 {
			time.Sleep(300 * time.Millisecond) // a downtime with rotations in it
		}
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatalf("writer: %v", err)
	}
	mu.Lock()
	want := append([]string(nil), written...)
	mu.Unlock()

	// A last, clean run must catch up with everything.
	cmd, stderr := start()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("last daemon stderr:\n%s", stderr.String())
		}
	}()
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids, _ := crashAlerts(t, alertsPath)
		missing = missing[:0]
		for _, u := range want {
			if _, ok := ids[u]; !ok {
				missing = append(missing, u)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); _ = cmd.Process.Kill() }()
	if err := cmd.Wait(); err != nil {
		t.Errorf("clean shutdown: %v", err)
	}
	ids, stats := crashAlerts(t, alertsPath)
	t.Logf("%d kills; %d lines written; %d alert lines, %d distinct connections alerted, %d replayed duplicates, %d torn lines",
		kills, len(want), stats.lines, len(ids), stats.dups, stats.torn)
	if len(missing) > 0 {
		t.Fatalf("%d of %d connections never alerted (lines lost), e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
	}
	for id, alertIDs := range ids {
		if len(alertIDs) != 1 {
			t.Errorf("connection %s alerted under different alert_ids %v", id, alertIDs)
		}
	}
	if stats.foreign > 0 {
		t.Errorf("%d alerts for servers not in the DB", stats.foreign)
	}
}

type crashStats struct{ lines, dups, torn, foreign int }

// crashAlerts maps connection id (uid or flow_id) → distinct alert_ids.
func crashAlerts(t *testing.T, path string) (map[string]map[string]bool, crashStats) {
	t.Helper()
	var st crashStats
	out := map[string]map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out, st
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a map[string]any
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&a); err != nil {
			st.torn++ // a write cut by SIGKILL; its event was not settled and is replayed
			continue
		}
		st.lines++
		id := fmt.Sprint(a["uid"])
		if a["uid"] == nil {
			id = fmt.Sprint(a["flow_id"])
		}
		if !strings.HasPrefix(fmt.Sprint(a["resp"]), "127.0.0.71:") && !strings.HasPrefix(fmt.Sprint(a["resp"]), "127.0.0.72:") {
			st.foreign++
		}
		if out[id] == nil {
			out[id] = map[string]bool{}
		} else {
			st.dups++
		}
		out[id][fmt.Sprint(a["alert_id"])] = true
	}
	return out, st
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
