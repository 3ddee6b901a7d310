package db

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// Two combined ATSF strings in goscanner's form (status_request removed).
var (
	atsfFP1 = "771_1302_43.AwQ-51.23_10.ABQAHQAXAB4AGQAYAQABAQECAQMBBA__43.AwQ-51.23_-|771_9f_1.AQ____|771_c013_65281.-11.AwABAg-35.____|771_1301_43.AwQ-51.29_-___-|771_3c_35.____|771_1303_43.AwQ-51.23_10.ABQAHQAXAB4AGQAYAQABAQECAQMBBA__43.AwQ-51.23_-|______<80|771_9c_1.AQ-35.____|______<40|______<40"
	atsfFP2 = strings.Replace(atsfFP1, "771_9f_1.AQ____", "771_c02f_____", 1)
)

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func goscannerCSV(rows ...string) string {
	h := "ip,port,server_name,random4520,random458,random6112,random6306,random6939,random7225,random7590,random8273,random9057,random9428,fingerprint\n"
	return h + strings.Join(rows, "\n") + "\n"
}

func goscannerRow(ip, port, sni, fp string) string {
	chs := strings.Split(fp, "|")
	if len(chs) != 10 {
		chs = make([]string, 10)
	}
	return strings.Join(append([]string{ip, port, sni}, append(chs, fp)...), ",")
}

func TestImportGoscanner(t *testing.T) {
	d, _ := openTest(t)
	in := goscannerCSV(
		goscannerRow("192.0.2.1", "443", "a.example", atsfFP1),
		goscannerRow("192.0.2.2", "8443", "", atsfFP1),
		goscannerRow("192.0.2.3", "443", "b.example", atsfFP2),
		goscannerRow("192.0.2.4", "443", "", ""),
	)
	if f, err := DetectFormat([]byte(in)); err != nil || f != FormatGoscanner {
		t.Fatalf("detected %q %v", f, err)
	}
	rep, err := d.ImportWith(strings.NewReader(in), "fingerprints.csv", ImportOptions{Category: "c2"})
	if err != nil {
		t.Fatalf("%v %+v", err, rep)
	}
	if rep.Accepted != 2 || len(rep.Warnings) != 1 || rep.Warnings[0].Line != 5 {
		t.Fatalf("report %+v", rep)
	}
	r, ok, err := d.Get(KindATSF, sha(atsfFP1))
	if err != nil || !ok {
		t.Fatalf("entry for the first fingerprint: %v %v", ok, err)
	}
	if r.Label != "scan:192.0.2.1:443/a.example" || r.Category != "c2" || r.Source != "import:fingerprints.csv" ||
		!strings.Contains(r.Notes, "2 server(s): 192.0.2.1:443/a.example, 192.0.2.2:8443") {
		t.Errorf("record %+v", r)
	}

	// --keep-sr output, a bad fingerprint and a missing column are refused
	// with the line and the reason.
	kept := strings.Replace(atsfFP1, "_43.AwQ-51.23_-|", "_43.AwQ-51.23_5.|", 1)
	rep, err = d.ImportWith(strings.NewReader(goscannerCSV(goscannerRow("192.0.2.9", "443", "", kept))), "sr.csv", ImportOptions{Format: FormatGoscanner})
	if err == nil || !strings.Contains(err.Error(), "sr.csv:2") || !strings.Contains(err.Error(), "status_request") {
		t.Errorf("keep-sr: %v", err)
	}
	_, err = d.ImportWith(strings.NewReader("ip,port,fingerprint\n1.2.3.4,443,x\n"), "h.csv", ImportOptions{Format: FormatGoscanner})
	if err == nil || !strings.Contains(err.Error(), "h.csv:1") || !strings.Contains(err.Error(), "server_name") {
		t.Errorf("header: %v", err)
	}
	_, err = d.ImportWith(strings.NewReader(goscannerCSV("192.0.2.9,443,,a,b,c,d,e,f,g,h,i,j,x|y")), "n.csv", ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "n.csv:2") || !strings.Contains(err.Error(), "2 ClientHello strings") {
		t.Errorf("short fingerprint: %v", err)
	}
}

func TestImportJARMPy(t *testing.T) {
	d, _ := openTest(t)
	j1 := "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5"
	j2 := "07d14d16d21d21d07c42d41d00041d24a458a375eef0c576d23a7bab9a9fb1"
	// What jarm.py -i hosts.txt -o out.csv writes, with -v on one line.
	in := "c2.example,192.0.2.10," + j1 + "\n" +
		"c2b.example,192.0.2.11," + j1 + ",c02b|0303|h2|0017-ff01,|||,|||,|||,|||,|||,|||,|||,|||,|||\n" +
		"down.example,Failed to resolve IP," + strings.Repeat("0", 62) + "\n" +
		"web.example,192.0.2.12," + strings.ToUpper(j2) + "\n"
	if f, err := DetectFormat([]byte(in)); err != nil || f != FormatJARMPy {
		t.Fatalf("detected %q %v", f, err)
	}
	rep, err := d.ImportWith(strings.NewReader(in), "out.csv", ImportOptions{Label: "watch", Confidence: "low"})
	if err != nil || rep.Accepted != 2 || len(rep.Warnings) != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	r, ok, _ := d.Get(KindJARM, j1)
	if !ok || r.Label != "watch" || r.Confidence != "low" || !strings.Contains(r.Notes, "c2.example (192.0.2.10), c2b.example (192.0.2.11)") {
		t.Errorf("record %+v", r)
	}
	if _, ok, _ := d.Get(KindJARM, j2); !ok {
		t.Error("second JARM missing")
	}
	_, err = d.ImportWith(strings.NewReader("x.example,192.0.2.1,nothex\n"), "bad.csv", ImportOptions{Format: FormatJARMPy})
	if err == nil || !strings.Contains(err.Error(), "bad.csv:1") || !strings.Contains(err.Error(), "jarm") {
		t.Errorf("bad hash: %v", err)
	}
}

func TestImportTLSX(t *testing.T) {
	d, _ := openTest(t)
	j1 := "29d29d00029d29d00042d42d000000ae1fbb3e7adcc62de05d4e3b6ab50db7"
	// tlsx -u … -jarm -json lines (fields as tlsx writes them).
	in := `{"timestamp":"2026-11-30T10:00:00.000Z","host":"c2.example","ip":"192.0.2.20","port":"443","probe_status":true,"tls_version":"tls12","cipher":"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256","tls_connection":"ctls","sni":"c2.example","jarm_hash":"` + j1 + `"}
{"timestamp":"2026-11-30T10:00:01.000Z","host":"192.0.2.21","ip":"192.0.2.21","port":"8443","probe_status":true,"jarm_hash":"` + j1 + `"}
{"timestamp":"2026-11-30T10:00:02.000Z","host":"nojarm.example","ip":"192.0.2.22","port":"443","probe_status":false}
`
	if f, err := DetectFormat([]byte(in)); err != nil || f != FormatTLSX {
		t.Fatalf("detected %q %v", f, err)
	}
	rep, err := d.ImportWith(strings.NewReader(in), "tlsx.jsonl", ImportOptions{})
	if err != nil || rep.Accepted != 1 || len(rep.Warnings) != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	r, ok, _ := d.Get(KindJARM, j1)
	if !ok || r.Label != "scan:192.0.2.20:443/c2.example" || !strings.Contains(r.Notes, "2 server(s)") || !strings.Contains(r.Notes, "192.0.2.21:8443") {
		t.Errorf("record %+v", r)
	}
	_, err = d.ImportWith(strings.NewReader(`{"host":"x","jarm_hash":"`+j1+`"`+"\n"), "t.jsonl", ImportOptions{Format: FormatTLSX})
	if err == nil || !strings.Contains(err.Error(), "t.jsonl:1") {
		t.Errorf("truncated JSON: %v", err)
	}
}
