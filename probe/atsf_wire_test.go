package probe

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// refHello is one record of clienthello_wire_hex.txt.
type refHello struct {
	name string
	sni  bool
	raw  []byte
}

func readWireHex(t testing.TB) []refHello {
	t.Helper()
	f, err := os.Open(filepath.Join(atsfTestdata(t), "clienthello_wire_hex.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := regexp.MustCompile(`^\[(random\d+) (SNI=example\.test|noSNI)\]`)
	var out []refHello
	var cur *refHello
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := head.FindStringSubmatch(line); m != nil {
			out = append(out, refHello{name: m[1], sni: m[2] != "noSNI"})
			cur = &out[len(out)-1]
			continue
		}
		if cur != nil && cur.raw == nil && line != "" && !strings.HasPrefix(line, "#") {
			cur.raw = mustHex(t, line)
		}
	}
	if len(out) != 20 {
		t.Fatalf("clienthello_wire_hex.txt: %d records, want 20", len(out))
	}
	return out
}

// chShape is a ClientHello record with the per-connection bytes (random,
// session id, key-share public keys) reduced to their lengths.
type chShape struct {
	recType     uint8
	recVers     uint16
	recLen      int
	legacy      uint16
	sidLen      int
	ciphers     string
	compression string
	exts        []string // "type:hex data" (key_share: groups and key lengths)
}

func parseCHShape(rec []byte) (*chShape, error) {
	s := byteString(rec)
	typ, _ := s.u8()
	vers, _ := s.u16()
	body, ok := s.vec16()
	if !ok || len(s) != 0 {
		return nil, fmt.Errorf("bad record framing")
	}
	sh := &chShape{recType: typ, recVers: vers, recLen: len(body)}
	ht, _ := body.u8()
	msg, ok := body.vec24()
	if !ok || ht != 1 || len(body) != 0 {
		return nil, fmt.Errorf("not one ClientHello message")
	}
	var ok1, ok2, ok3, ok4 bool
	sh.legacy, ok1 = msg.u16()
	_, ok2 = msg.take(32)
	sid, ok3 := msg.vec8()
	sh.sidLen = len(sid)
	ciphers, ok4 := msg.vec16()
	comp, ok5 := msg.vec8()
	exts, ok6 := msg.vec16()
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || len(msg) != 0 {
		return nil, fmt.Errorf("truncated ClientHello")
	}
	sh.ciphers, sh.compression = hex.EncodeToString(ciphers), hex.EncodeToString(comp)
	for len(exts) > 0 {
		et, ok1 := exts.u16()
		data, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("truncated extensions")
		}
		v := hex.EncodeToString(data)
		if et == extKeyShare {
			list, _ := data.vec16()
			var shares []string
			for len(list) > 0 {
				g, _ := list.u16()
				k, ok := list.vec16()
				if !ok {
					return nil, fmt.Errorf("truncated key_share")
				}
				if len(k) == 1 { // the GREASE dummy is fixed
					shares = append(shares, fmt.Sprintf("%04x=%x", g, []byte(k)))
				} else {
					shares = append(shares, fmt.Sprintf("%04x/%d", g, len(k)))
				}
			}
			v = strings.Join(shares, ",")
		}
		sh.exts = append(sh.exts, fmt.Sprintf("%d:%s", et, v))
	}
	return sh, nil
}

// captureHellos accepts connections on ip and keeps the first record of
// each, then closes it (so every ClientHello gets no answer).
func captureHellos(t *testing.T, ip string) (func() [][]byte, stackprint.Target) {
	t.Helper()
	var mu sync.Mutex
	var got [][]byte
	ap := serveLoopback(t, ip, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		mu.Lock()
		got = append(got, append(hdr, body...))
		mu.Unlock()
	})
	return func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}, stackprint.Target{IP: ap.Addr(), Port: ap.Port()}
}

// TestATSFWireHellos compares every ClientHello the prober sends, with and
// without SNI, structurally with the reference scanner's records: record
// header, legacy_version, session id length, cipher list, compression,
// extension order and every extension's bytes except key-share public
// keys (whose groups and lengths must match).
func TestATSFWireHellos(t *testing.T) {
	refs := readWireHex(t)
	e, err := NewEngine(EngineConfig{Kinds: []string{stackprint.KindATSF}, IOTimeout: 2 * time.Second, Deadline: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sent := map[bool][][]byte{}
	for i, withSNI := range []bool{true, false} {
		got, target := captureHellos(t, fmt.Sprintf("127.0.0.%d", 81+i))
		if withSNI {
			target.SNI = "example.test"
		}
		res := e.Probe(testCtx(t), target, "")
		if res.Conns != 10 {
			t.Fatalf("SNI=%v: %d connections, want 10 (%s %s)", withSNI, res.Conns, res.Status, res.Error)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(got()) < 10 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		sent[withSNI] = got()
	}
	names := ATSFHelloNames()
	identical := 0
	for _, ref := range refs {
		i := slices.Index(names, ref.name)
		if i < 0 || len(sent[ref.sni]) <= i {
			t.Errorf("%s SNI=%v: nothing captured", ref.name, ref.sni)
			continue
		}
		want, err := parseCHShape(ref.raw)
		if err != nil {
			t.Fatalf("reference %s: %v", ref.name, err)
		}
		got, err := parseCHShape(sent[ref.sni][i])
		if err != nil {
			t.Errorf("%s SNI=%v: %v", ref.name, ref.sni, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s SNI=%v differs:\n got %+v\nwant %+v", ref.name, ref.sni, got, want)
			continue
		}
		if len(sent[ref.sni][i]) != len(ref.raw) || !bytes.Equal(sent[ref.sni][i][:5], ref.raw[:5]) {
			t.Errorf("%s SNI=%v: record header % x, want % x", ref.name, ref.sni, sent[ref.sni][i][:5], ref.raw[:5])
			continue
		}
		identical++
	}
	t.Logf("%d of %d ClientHello records structurally identical to the reference", identical, len(refs))
}

// TestATSFWireOrder checks the extension-order quirk directly against the
// summary table of docs/ATSF.md §1.2 (via the reference records).
func TestATSFWireOrder(t *testing.T) {
	defs, err := loadATSFDefs()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*atsfDef{}
	for _, d := range defs {
		byName[d.Name] = d
	}
	for _, ref := range readWireHex(t) {
		shape, err := parseCHShape(ref.raw)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint16
		for _, e := range shape.exts {
			var id uint16
			fmt.Sscanf(e, "%d:", &id)
			want = append(want, id)
		}
		if got := byName[ref.name].wireOrder(ref.sni, false); !slices.Equal(got, want) {
			t.Errorf("%s SNI=%v: order %v, want %v", ref.name, ref.sni, got, want)
		}
	}
}
