package db

import (
	"strings"
	"testing"
)

func TestImportGood(t *testing.T) {
	d, _ := openTest(t)
	in := "\ufeffLabel,kind,value,source,confidence,notes\n" +
		"# seed list, provenance: test\n" +
		"cobalt-strike,jarm," + strings.ToUpper(jarmA) + ",salesforce/jarm,high,\"default profile, 4.x\"\n" +
		"\n" +
		"metasploit, jarm, " + jarmB + ", salesforce/jarm,,\n" +
		"sslbl,cert_sha1,6a:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc,abuse.ch,medium,\n"
	rep, err := d.Import(strings.NewReader(in), "seed.csv")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 3 || len(rep.Rejected) != 0 {
		t.Fatalf("report = %+v, want 3 accepted", rep)
	}
	r, ok, err := d.Get("jarm", jarmA)
	if err != nil || !ok {
		t.Fatalf("Get: ok=%v err=%v", ok, err)
	}
	if r.Label != "cobalt-strike" || r.Source != "salesforce/jarm" || r.Confidence != "high" || r.Notes != "default profile, 4.x" {
		t.Errorf("imported record = %+v", r)
	}
	// jarmB is the Java 11 stack: a blank confidence makes it low, with a warning.
	if r, _, _ := d.Get("jarm", jarmB); r.Confidence != "low" {
		t.Errorf("blank confidence of a default stack imported as %q, want low", r.Confidence)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Line != 5 || !strings.Contains(rep.Warnings[0].Reason, "Java 11") {
		t.Errorf("warnings = %+v, want one for line 5 naming the Java 11 stack", rep.Warnings)
	}
	if _, ok, _ := d.Get("cert_sha1", sha1A); !ok {
		t.Error("cert_sha1 in colon form not imported")
	}
}

func TestImportBadLineWritesNothing(t *testing.T) {
	d, _ := openTest(t)
	in := "kind,value,label,source,confidence\n" + // line 1
		"jarm," + jarmA + ",good,src,high\n" + // line 2
		"jarm,abc,short,src,high\n" + // line 3: bad
		"jarm," + jarmB + ",good,src,sure\n" + // line 4: bad
		"jarm," + jarmA + ",dup,src,high\n" + // line 5: duplicate of 2
		"jarm," + jarmB + ",toofew\n" // line 6: field count
	rep, err := d.Import(strings.NewReader(in), "bad.csv")
	if err == nil {
		t.Fatal("Import with bad lines succeeded")
	}
	for _, want := range []string{"bad.csv:3", `value "abc"`, "nothing imported"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if rep.Accepted != 0 {
		t.Errorf("Accepted = %d, want 0", rep.Accepted)
	}
	var lines []int
	for _, rj := range rep.Rejected {
		lines = append(lines, rj.Line)
	}
	if want := []int{3, 4, 5, 6}; !equalInts(lines, want) {
		t.Errorf("rejected lines = %v, want %v (%+v)", lines, want, rep.Rejected)
	}
	if all, _ := d.List(""); len(all) != 0 {
		t.Errorf("records written despite a bad line: %+v", all)
	}
}

func TestImportHeaderErrors(t *testing.T) {
	d, _ := openTest(t)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "h.csv:1: empty file"},
		{"unknown column", "kind,value,label,source,confidence,lable\n", `h.csv:1: header: unknown column "lable"`},
		{"missing column", "kind,value,label\n", "h.csv:1: header: missing column source, confidence"},
		{"duplicate column", "kind,value,label,source,confidence,kind\n", `column "kind" twice`},
		{"header after comment", "# provenance\nkind,value,label,sauce,confidence\n", `h.csv:2: header: unknown column "sauce"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Import(strings.NewReader(tt.in), "h.csv")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestImportCSVSyntaxError(t *testing.T) {
	d, _ := openTest(t)
	in := "kind,value,label,source,confidence\n" +
		"jarm," + jarmA + ",a \"quoted\" word\",src,high\n" +
		"jarm," + jarmB + ",fine,src,high\n"
	rep, err := d.Import(strings.NewReader(in), "q.csv")
	if err == nil || !strings.Contains(err.Error(), "q.csv:2") {
		t.Fatalf("err = %v, want q.csv:2", err)
	}
	if len(rep.Rejected) != 1 {
		t.Errorf("rejections = %+v, want one", rep.Rejected)
	}
	if all, _ := d.List(""); len(all) != 0 {
		t.Errorf("records written: %+v", all)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The adversarial pass's reproduction: one 2 MB line aborted a JSONL import
// ("bufio.Scanner: token too long"), the lines after it were never checked
// and --partial imported nothing. Now it is one rejected line among others.
func TestImportJSONLHugeLineIsOneRejection(t *testing.T) {
	d, _ := openTest(t)
	good := func(v, label string) string {
		return `{"kind":"jarm","value":"` + v + `","label":"` + label + `","source":"t","confidence":"high"}` + "\n"
	}
	huge := `{"kind":"jarm","value":"` + jarmA + `","label":"` + strings.Repeat("x", 2<<20) + `"}` + "\n"
	in := good(jarmA, "first") + huge + good(jarmHuge3, "third") + `{"kind":"jarm","value":"nothex"}` + "\n"

	rep, err := d.Import(strings.NewReader(in), "big.jsonl")
	if err == nil || !strings.Contains(err.Error(), "big.jsonl:2: line of") || !strings.Contains(err.Error(), "2 bad lines") {
		t.Fatalf("all-or-nothing import: err = %v, want big.jsonl:2 and 2 bad lines", err)
	}
	if len(rep.Rejected) != 2 || rep.Rejected[0].Line != 2 || rep.Rejected[1].Line != 4 {
		t.Fatalf("rejections = %+v, want lines 2 and 4", rep.Rejected)
	}

	rep, err = d.ImportWith(strings.NewReader(in), "big.jsonl", ImportOptions{Partial: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 2 || len(rep.Rejected) != 2 {
		t.Fatalf("partial import report = %+v, want 2 accepted and 2 rejected", rep)
	}
	if r, ok, _ := d.Get("jarm", jarmHuge3); !ok || r.Label != "third" {
		t.Errorf("the line after the huge one was not imported: %+v %v", r, ok)
	}
}

const jarmHuge3 = "29d29d00029d29d00042d43d00041d5de67cc9954cc85372523050f20b5007"
