package db

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// sslblSample has the exact shape of sslblacklist.csv: a # banner, the
// column header as a comment, then unquoted rows.
const sslblSample = `################################################################
# abuse.ch SSLBL SSL Certificate Blacklist (SHA1 Fingerprints) #
# Last updated: 2024-09-02 06:17:52 UTC                        #
#                                                              #
# Terms Of Use: https://sslbl.abuse.ch/blacklist/              #
# For questions please contact sslbl [at] abuse.ch             #
################################################################
#
# Listingdate,SHA1,Listingreason
2024-09-02 06:17:52,4da14224452c1fe61f46b1112c43ecfd9f322c82,Rhadamanthys C&C
2024-09-02 05:19:10,B785D1A9E5784703B98A96698AD05DFF5E07229A,DCRat C&C
2024-08-30 13:46:12,6bef207908bfad6b19580067ce770bc820d3d2ef,Malware distribution
`

func TestDetectFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{sslblSample, FormatSSLBL},
		{"2024-09-02 06:17:52,4da14224452c1fe61f46b1112c43ecfd9f322c82,X C&C\n", FormatSSLBL},
		{"Listingdate,SHA1,Listingreason\n", FormatSSLBL},
		{"# seeds\nkind,value,label,source,confidence\n", FormatCSV},
		{"\ufeffLabel,KIND,value,source,confidence\n", FormatCSV},
		{"\n{\"kind\":\"jarm\"}\n", FormatJSONL},
		{jarmA + ",cs\n", FormatJARM},
		{"jarm,label,source\n" + jarmA + ",cs,x\n", FormatJARM},
	}
	for _, tt := range tests {
		got, err := DetectFormat([]byte(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("DetectFormat(%.40q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := DetectFormat([]byte("hello world\n")); err == nil || !strings.Contains(err.Error(), "cannot tell the format") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestImportSSLBL(t *testing.T) {
	d, _ := openTest(t)
	rep, err := d.ImportWith(strings.NewReader(sslblSample), "sslblacklist.csv", ImportOptions{})
	if err != nil {
		t.Fatal(err, rep.Rejected)
	}
	if rep.Format != FormatSSLBL || rep.Accepted != 3 || len(rep.Keys) != 3 {
		t.Fatalf("report %+v", rep)
	}
	r, ok, _ := d.Get(KindCertSHA1, "b785d1a9e5784703b98a96698ad05dff5e07229a")
	if !ok || r.Label != "DCRat" || r.Category != "c2" || r.Source != "abuse.ch SSLBL" || r.Confidence != "high" ||
		!r.FirstSeen.Equal(time.Date(2024, 9, 2, 5, 19, 10, 0, time.UTC)) || !strings.Contains(r.Notes, `"DCRat C&C"`) {
		t.Errorf("DCRat record = %+v", r)
	}
	if r, _, _ := d.Get(KindCertSHA1, "6bef207908bfad6b19580067ce770bc820d3d2ef"); r.Label != "Malware distribution" || r.Category != "malware" {
		t.Errorf("non-C&C reason = %+v", r)
	}
	st, err := d.Stats()
	if err != nil || st.LastImport == nil || st.LastImport.Name != "sslblacklist.csv" || st.LastImport.Format != "sslbl" || st.LastImport.Accepted != 3 {
		t.Errorf("stats after import = %+v %v", st, err)
	}

	bad := sslblSample + "2024-13-01 00:00:00,4da14224452c1fe61f46b1112c43ecfd9f322c83,X C&C\n" + // line 13: date
		"2024-08-30 13:46:12,4da14224452c1fe61f46b1112c43ecfd9f322c8,Y C&C\n" + // line 14: 39 hex
		"2024-08-30 13:46:12,4da14224452c1fe61f46b1112c43ecfd9f322c84,\n" // line 15: no reason
	d2, _ := openTest(t)
	rep, err = d2.ImportWith(strings.NewReader(bad), "bad-sslbl.csv", ImportOptions{Format: FormatSSLBL})
	if err == nil || !strings.Contains(err.Error(), "bad-sslbl.csv:13") || !strings.Contains(err.Error(), "nothing imported") {
		t.Fatalf("err = %v", err)
	}
	want := []string{"listing date", "a cert_sha1 must be 40 hex characters, got 39", "listing reason: empty"}
	if len(rep.Rejected) != 3 {
		t.Fatalf("rejected = %+v", rep.Rejected)
	}
	for i, w := range want {
		if rep.Rejected[i].Line != 13+i || !strings.Contains(rep.Rejected[i].Reason, w) {
			t.Errorf("rejection %d = %+v, want line %d %q", i, rep.Rejected[i], 13+i, w)
		}
	}
	if all, _ := d2.List(""); len(all) != 0 {
		t.Errorf("all-or-nothing broken: %d records", len(all))
	}
	// --partial writes the good lines and still reports the bad ones.
	rep, err = d2.ImportWith(strings.NewReader(bad), "bad-sslbl.csv", ImportOptions{Partial: true})
	if err != nil || rep.Accepted != 3 || len(rep.Rejected) != 3 {
		t.Fatalf("partial: %+v %v", rep, err)
	}
}

func TestImportJARMList(t *testing.T) {
	d, _ := openTest(t)
	const goDefault = "3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"
	in := "# my list\nhash,label,source\n" +
		jarmA + ",salesforce-cdn\n" + // line 3, source from the file name
		goDefault + ",go-thing,vendor\n" + // line 4: default stack
		strings.Repeat("0", 62) + ",zero\n" + // line 5
		jarmA[:61] + ",short\n" + // line 6
		"abc\n" // line 7
	rep, err := d.ImportWith(strings.NewReader(in), "/tmp/lists/my-jarms.txt", ImportOptions{})
	if err == nil || len(rep.Rejected) != 3 {
		t.Fatalf("want 3 rejections: %+v %v", rep, err)
	}
	for i, w := range []string{"all-zero JARM", "a jarm must be 62 hex characters, got 61", "1 fields, want hash,label[,source]"} {
		if rep.Rejected[i].Line != 5+i || !strings.Contains(rep.Rejected[i].Reason, w) {
			t.Errorf("rejection %+v, want line %d %q", rep.Rejected[i], 5+i, w)
		}
	}
	in = "# my list\nhash,label,source\n" + jarmA + ",salesforce-cdn\n" + goDefault + ",go-thing,vendor\n"
	rep, err = d.ImportWith(strings.NewReader(in), "/tmp/lists/my-jarms.txt", ImportOptions{})
	if err != nil || rep.Format != FormatJARM || rep.Accepted != 2 {
		t.Fatalf("%+v %v", rep, err)
	}
	if r, _, _ := d.Get("jarm", jarmA); r.Source != "import:my-jarms.txt" || r.Confidence != "medium" {
		t.Errorf("record = %+v", r)
	}
	if r, _, _ := d.Get("jarm", goDefault); r.Source != "vendor" || r.Confidence != "low" {
		t.Errorf("default stack record = %+v", r)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Line != 4 || !strings.Contains(rep.Warnings[0].Reason, "Go 1.26") {
		t.Errorf("warnings = %+v", rep.Warnings)
	}
	// An explicit confidence is kept, with a warning.
	rep, _ = d.ImportWith(strings.NewReader(goDefault+",go-thing\n"), "x", ImportOptions{Format: "jarm", Confidence: "high", Replace: true})
	if r, _, _ := d.Get("jarm", goDefault); r.Confidence != "high" || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0].Reason, "high confidence will flag every server") {
		t.Errorf("explicit confidence: %+v %+v", r, rep.Warnings)
	}
}

func TestImportJSONLRejections(t *testing.T) {
	d, _ := openTest(t)
	in := `{"kind":"jarm","value":"` + jarmA + `","label":"a","confidence":"high"}` + "\n" +
		`{"kind":"jarm","value":"` + jarmB + `","lable":"typo"}` + "\n" +
		"\n# comment\n" +
		`{"kind":"cert_sha256","value":"` + strings.Repeat("a", 63) + `","label":"c"}` + "\n" +
		`not json` + "\n"
	rep, err := d.ImportWith(strings.NewReader(in), "x.jsonl", ImportOptions{})
	if err == nil {
		t.Fatal("accepted")
	}
	lines := []int{}
	for _, r := range rep.Rejected {
		lines = append(lines, r.Line)
	}
	if !equalInts(lines, []int{2, 5, 6}) || !strings.Contains(rep.Rejected[0].Reason, `unknown field "lable"`) || !strings.Contains(rep.Rejected[1].Reason, "64 hex") {
		t.Errorf("rejections = %+v", rep.Rejected)
	}
}

func TestExportRoundTrip(t *testing.T) {
	d, c := openTest(t)
	recs := []Record{
		{Kind: "jarm", Value: jarmA, Label: "a, with comma", Category: "c2", Source: "s", Confidence: "high", Notes: "line1\nline2", FirstSeen: c.t, LastSeen: c.t},
		{Kind: "cert_sha1", Value: sha1A, Label: "cert", Source: "abuse.ch SSLBL", Confidence: "low"},
		{Kind: "atsf", Value: strings.Repeat("ab", 32), Label: "atsf-thing", Source: "lab", Confidence: "medium", BlockCount: 4, TopCount: 1},
		{Kind: "atsf", Value: ATSFID(goHellos), Label: "go-server", Source: "lab", Confidence: "high", Hellos: goHellos},
	}
	for _, r := range recs {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{ExportJSONL, ExportCSV} {
		var buf bytes.Buffer
		n, err := d.Export(&buf, ExportOptions{Format: format})
		if err != nil || n != len(recs) {
			t.Fatalf("export %s: %d %v", format, n, err)
		}
		if format == ExportCSV {
			// One column per ClientHello, named after it, with the answers
			// of an atsf entry that has them.
			rows, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			header := rows[0]
			i := slices.Index(header, "random6306")
			if i < 0 || !slices.Equal(header[len(header)-ATSFHellos:], ATSFHelloNames()) {
				t.Fatalf("csv header: %q", header)
			}
			for _, row := range rows[1:] {
				if want := map[bool]string{true: goHellos[3], false: ""}[row[2] == "go-server"]; row[i] != want {
					t.Errorf("csv row %q: random6306 = %q, want %q", row[2], row[i], want)
				}
			}
		}
		d2, _ := openTest(t)
		rep, err := d2.ImportWith(bytes.NewReader(buf.Bytes()), "export."+format, ImportOptions{})
		if err != nil || rep.Format != format || rep.Accepted != len(recs) {
			t.Fatalf("re-import %s: %+v %v\n%s", format, rep, err, buf.String())
		}
		for _, want := range recs {
			got, ok, _ := d2.Get(want.Kind, want.Value)
			if !ok || got.Label != want.Label || got.Notes != want.Notes || got.Confidence != want.Confidence ||
				got.BlockCount != want.BlockCount || got.TopCount != want.TopCount || !got.FirstSeen.Equal(want.FirstSeen) ||
				!slices.Equal(got.Hellos, want.Hellos) {
				t.Errorf("%s round trip: got %+v want %+v", format, got, want)
			}
		}
	}
	var buf bytes.Buffer
	if n, _ := d.Export(&buf, ExportOptions{Format: ExportJSONL, MinConfidence: "medium"}); n != 3 {
		t.Errorf("min confidence medium exported %d", n)
	}
	if _, err := d.Export(&buf, ExportOptions{Format: "yaml"}); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestExportZeekIntelAndDataset(t *testing.T) {
	d, c := openTest(t)
	sha256 := strings.Repeat("cd", 32)
	for _, r := range []Record{
		{Kind: "jarm", Value: jarmA, Label: `evil\lab`, Confidence: "high"},
		{Kind: "cert_sha1", Value: sha1A, Label: "sslbl-cert", Source: "abuse.ch SSLBL", Confidence: "high"},
		{Kind: "cert_sha256", Value: sha256, Label: "cert256", Confidence: "low"},
	} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	obs := []stackprint.Result{
		result("203.0.113.9", 443, "a.example", jarmA, stackprint.StatusOK, c.t),
		result("203.0.113.9", 8443, "", jarmA, stackprint.StatusOK, c.t), // same IP twice: one line
		result("2001:db8::7", 443, "", jarmA, stackprint.StatusOK, c.t),
		result("198.51.100.1", 443, "", jarmB, stackprint.StatusOK, c.t), // benign
	}
	for _, r := range obs {
		if err := d.RecordObservation(r); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	n, err := d.Export(&buf, ExportOptions{Format: ExportZeekIntel})
	if err != nil {
		t.Fatal(err)
	}
	want := "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url\n" +
		"203.0.113.9\tIntel::ADDR\tstackprint\tstackprint: evil\\x5clab (jarm match on port 443, high confidence); evil\\x5clab (jarm match on port 8443, high confidence)\t-\n" +
		"2001:db8::7\tIntel::ADDR\tstackprint\tstackprint: evil\\x5clab (jarm match on port 443, high confidence)\t-\n" +
		sha1A + "\tIntel::CERT_HASH\tstackprint\tstackprint: sslbl-cert (abuse.ch SSLBL, high confidence)\t-\n"
	if n != 3 || buf.String() != want {
		t.Errorf("zeek intel (%d):\n%s\nwant:\n%s", n, buf.String(), want)
	}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n")[1:] {
		if f := strings.Split(l, "\t"); len(f) != 5 {
			t.Errorf("line %q has %d fields", l, len(f))
		}
	}
	buf.Reset()
	n, err = d.Export(&buf, ExportOptions{Format: ExportSuricataDataset})
	if err != nil || n != 2 || buf.String() != "203.0.113.9\n2001:db8::7\n" {
		t.Errorf("dataset (%d, %v):\n%s", n, err, buf.String())
	}
	buf.Reset()
	if n, _ := d.Export(&buf, ExportOptions{Format: ExportSuricataDataset, Since: c.t.Add(time.Hour)}); n != 0 {
		t.Errorf("window ignored: %s", buf.String())
	}
}

func TestStats(t *testing.T) {
	d, _ := openTest(t)
	for _, r := range []Record{
		{Kind: "jarm", Value: jarmA, Label: "a", Category: "c2", Source: "s1", Confidence: "high"},
		{Kind: "jarm", Value: jarmB, Label: "b", Source: "s1", Confidence: "low"},
		{Kind: "cert_sha1", Value: sha1A, Label: "c", Category: "c2", Source: "s2"},
	} {
		if err := d.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Fingerprints != 3 || st.ByKind["jarm"] != 2 || st.ByKind["cert_sha1"] != 1 || st.ByCategory["c2"] != 2 || st.ByCategory["(none)"] != 1 ||
		st.BySource["s1"] != 2 || st.ByConfidence["medium"] != 1 || st.FileSize <= 0 || st.SchemaVersion != 2 || st.LastImport != nil {
		t.Errorf("stats = %+v", st)
	}
}

func TestImportKeepsEntriesOfAnotherSource(t *testing.T) {
	d, _ := openTest(t)
	const j = "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	if err := d.Add(Record{Kind: "jarm", Value: j, Label: "my-c2", Source: "analyst", Confidence: "high"}); err != nil {
		t.Fatal(err)
	}
	feed := "hash,label,source\n" + j + ",Metasploit,public-list\n3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd,other,public-list\n"
	rep, err := d.ImportWith(strings.NewReader(feed), "feed.txt", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 1 || len(rep.Kept) != 1 || rep.Kept[0].Value != j || len(rep.Keys) != 1 || rep.Keys[0].Value == j {
		t.Fatalf("report %+v: want the curated entry kept and only the new one written", rep)
	}
	if r, _, _ := d.Get("jarm", j); r.Label != "my-c2" || r.Source != "analyst" || r.Confidence != "high" {
		t.Fatalf("curated entry changed by an import: %+v", r)
	}
	if _, err := d.ImportWith(strings.NewReader(feed), "feed.txt", ImportOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := d.Get("jarm", j); r.Label != "Metasploit" {
		t.Fatalf("--replace did not replace: %+v", r)
	}
}
