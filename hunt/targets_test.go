package hunt

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func TestReadSpecsFormats(t *testing.T) {
	in := strings.Join([]string{
		"# a comment",
		"",
		"192.0.2.1",                          // 2: address
		"198.51.100.0/30",                    // 4: CIDR
		"192.0.2.2:8443",                     // 5: ADDR:PORT
		"[2001:db8::1]:443",                  // 6
		"example.org:443",                    // 7: host
		"open tcp 4443 192.0.2.3 1700000000", // 8: masscan -oL
		"banner tcp 443 192.0.2.3 1700000000 ssl x", // 9: skipped
		`{   "ip": "192.0.2.4",   "timestamp": "1700000000", "ports": [ {"port": 443, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },`, // 10
		"192.0.2.5,443,www.example.org", // 11: headerless CSV
		"192.0.2.6 named.example.org",   // 12: address and SNI
		"not an address!",               // 13: bad
		"192.0.2.7:0",                   // 14: bad port
		"10.0.0.0/4",                    // 15: too large
		"192.0.2.8 443 a b",             // 16: extra fields
		"[",                             // 17: masscan -oJ bracket
		`{"ip": "bogus"}`,               // 18: bad
	}, "\n")
	var specs []Spec
	var bad []BadLine
	if err := ReadSpecs(strings.NewReader(in), "list.txt", func(s Spec) error { specs = append(specs, s); return nil }, func(b BadLine) { bad = append(bad, b) }); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, s := range specs {
		got = append(got, strings.Join([]string{s.Prefix.String(), s.Host, itoa(s.Port), s.SNI, s.Where()}, "|"))
	}
	want := []string{
		"192.0.2.1/32||0||list.txt:3",
		"198.51.100.0/30||0||list.txt:4",
		"192.0.2.2/32||8443||list.txt:5",
		"2001:db8::1/128||443||list.txt:6",
		"invalid Prefix|example.org|443|example.org|list.txt:7",
		"192.0.2.3/32||4443||list.txt:8",
		"192.0.2.4/32||443||list.txt:10",
		"192.0.2.5/32||443|www.example.org|list.txt:11",
		"192.0.2.6/32||0|named.example.org|list.txt:12",
	}
	if !slices.Equal(got, want) {
		t.Errorf("specs:\n got %q\nwant %q", got, want)
	}
	var badLines []int
	for _, b := range bad {
		if b.File != "list.txt" || b.Reason == "" {
			t.Errorf("bad line without file or reason: %+v", b)
		}
		badLines = append(badLines, b.Line)
	}
	if !slices.Equal(badLines, []int{13, 14, 15, 16, 18}) {
		t.Errorf("bad lines %v, want 13 14 15 16 18 (%v)", badLines, bad)
	}
}

func TestReadSpecsCSVHeader(t *testing.T) {
	// zmap -O csv -f saddr,sport,success and a generic CSV with ip,port,sni.
	zmap := "saddr,sport,success\n192.0.2.1,443,1\n192.0.2.2,443,0\n999.1.1.1,443,1\n"
	var got []string
	var bad []BadLine
	spec := func(s Spec) error { got = append(got, s.Prefix.Addr().String()+":"+itoa(s.Port)+"/"+s.SNI); return nil }
	if err := ReadSpecs(strings.NewReader(zmap), "zmap.csv", spec, func(b BadLine) { bad = append(bad, b) }); err != nil {
		t.Fatal(err)
	}
	generic := "IP,Port,SNI\n192.0.2.9,8443,x.example.org\n192.0.2.10,,\n"
	if err := ReadSpecs(strings.NewReader(generic), "g.csv", spec, func(b BadLine) { bad = append(bad, b) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:443/", "192.0.2.9:8443/x.example.org", "192.0.2.10:0/"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if len(bad) != 1 || bad[0].String() != `zmap.csv:4: not an address, CIDR, HOST:PORT or host name: "999.1.1.1"` {
		t.Errorf("bad = %v", bad)
	}
}

func TestExpandPortsAndNames(t *testing.T) {
	var bad []BadLine
	names, err := ReadSNIMap(strings.NewReader("192.0.2.1 a.example.org b.example.org\n192.0.2.1:8443 c.example.org\nbogus x\n"), "names", func(b BadLine) { bad = append(bad, b) })
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0].Line != 3 {
		t.Errorf("bad = %v", bad)
	}
	var got []string
	expand(Spec{Prefix: netip.MustParsePrefix("192.0.2.1/32")}, netip.MustParseAddr("192.0.2.1"), []uint16{443, 8443}, names, func(t stackprint.Target) bool {
		got = append(got, Key(t))
		return true
	})
	want := []string{"192.0.2.1:443 a.example.org", "192.0.2.1:443 b.example.org", "192.0.2.1:8443 c.example.org"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	n := 0
	for range prefixAddrs(netip.MustParsePrefix("10.1.2.0/29")) {
		n++
	}
	if n != 8 {
		t.Errorf("/29 expanded to %d addresses", n)
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

func TestEncoders(t *testing.T) {
	r := Record{IP: netip.MustParseAddr("192.0.2.1"), Port: 443, SNI: "a.example.org", JARMSNI: "192.0.2.1", Status: stackprint.StatusOK,
		JARM: "2ad2ad0002ad2ad22c2ad2ad2ad2ad2eac92ec34bcc0cf7520e97547f83e81", Matches: []stackprint.Match{{Kind: "jarm", Label: "c2,x"},
			{Kind: "atsf", Label: "c2-y", Near: &stackprint.Near{Agree: 9, Of: 10, Differs: []string{"random6306"}, Details: []string{"ALPN"}}}}, Conns: 10, Source: "l:1",
		Hellos: []string{"771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-", "a", "b", "______<120", "c", "d", "e", "f", "g", "______<40"}}
	for _, f := range Formats() {
		e, err := NewEncoder(f)
		if err != nil {
			t.Fatal(err)
		}
		h := string(e.Header(r.TS))
		line, err := e.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		s := string(line)
		switch f {
		case FormatCSV:
			if !strings.HasPrefix(h, "ts,ip,port,sni,") || !strings.Contains(s, `,192.0.2.1,443,a.example.org,`) || !strings.Contains(s, `,jarm,"c2,x",atsf: 9 of 10 answers equal to c2-y; differs on random6306: ALPN,10,`) ||
				!strings.HasSuffix(h, ",error,random4520,random458,random6112,random6306,random6939,random7225,random7590,random8273,random9057,random9428\n") ||
				!strings.HasSuffix(s, ",l:1,,771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-,a,b,______<120,c,d,e,f,g,______<40\n") {
				t.Errorf("csv:\n%s%s", h, s)
			}
		case FormatZeek:
			if !strings.Contains(h, "#path\tstackprint_hunt\n") || !strings.Contains(h, "#fields\tts\tip\tport\tsni\t") || !strings.Contains(s, "\t192.0.2.1\t443\ta.example.org\t") || !strings.Contains(s, "\tjarm\tc2\\x2cx\tatsf: 9 of 10 answers equal to c2-y; differs on random6306: ALPN\t10\t") {
				t.Errorf("zeek:\n%s%s", h, s)
			}
		case FormatJSONL:
			if h != "" || !strings.Contains(s, `"matches":[{"kind":"jarm","value":"","label":"c2,x"},{"kind":"atsf","value":"","label":"c2-y","near":{"agree":9,"of":10,"differs":["random6306"],"details":["ALPN"]}}]`) {
				t.Errorf("jsonl: %s", s)
			}
		}
		if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
			t.Errorf("%s: not one line: %q", f, s)
		}
	}
}
