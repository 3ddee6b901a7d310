package db

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// goHellos are the answers of Go's crypto/tls server (testdata/atsf).
var goHellos = []string{
	"771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"771_c02b_16.AAkIaHR0cC8xLjE-0.____",
	"771_cca9_35.-65281.-16.AAMCaDI-11.AQA-0.____<40",
	"______<120",
	"______<40",
	"771_1303_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_-",
	"769_c009_35.-65281.-16.AAMCaDI-0.____",
	"771_c02b_35.-16.AAMCaDI-0.____",
	"771_c02b_35.-11.AQA-0.____",
	"771_cca9_16.AAMCaDI-0.____",
}

func with(h []string, i int, s string) []string {
	out := slices.Clone(h)
	out[i] = s
	return out
}

func resultOf(hellos []string) stackprint.Result {
	a := &stackprint.ATSF{}
	for i, h := range hellos {
		a.Hellos = append(a.Hellos, stackprint.ATSFHello{Name: atsfHelloNames[i], Raw: h})
	}
	a.ID = ATSFID(hellos)
	if a.ID != "" {
		a.Fingerprint = strings.Join(hellos, "|")
	}
	return stackprint.Result{Status: stackprint.StatusOK, ATSF: a}
}

func addATSF(t *testing.T, d *DB, label, conf string, hellos []string) Record {
	t.Helper()
	r, err := d.AddRecord(Record{Kind: KindATSF, Value: ATSFID(hellos), Label: label, Confidence: conf, Hellos: hellos})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func nearOnly(t *testing.T, d *DB, r stackprint.Result) []stackprint.Match {
	t.Helper()
	ms, err := d.Near(r)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestNearATSFIndex(t *testing.T) {
	d := openTemp(t)
	alpn := with(goHellos, 3, "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-")
	cipher := with(goHellos, 7, "771_c02f_35.-16.AAMCaDI-0.____")
	two := with(with(goHellos, 1, "x"), 2, "y")
	addATSF(t, d, "alpn-variant", "high", alpn)
	addATSF(t, d, "cipher-variant", "medium", cipher)
	addATSF(t, d, "two-off", "high", two)

	ms := nearOnly(t, d, resultOf(goHellos))
	if len(ms) != 2 {
		t.Fatalf("near = %+v, want the two one-off entries (not the two-off one)", ms)
	}
	// Best first: equal agreement, then confidence.
	if ms[0].Label != "alpn-variant" || ms[1].Label != "cipher-variant" {
		t.Errorf("order = %s, %s", ms[0].Label, ms[1].Label)
	}
	if n := ms[0].Near; n.Agree != 9 || !slices.Equal(n.Differs, []string{"random6306"}) || !slices.Equal(n.Details, []string{"ALPN"}) {
		t.Errorf("alpn variant: %+v", n)
	}
	if n := ms[1].Near; !slices.Equal(n.Differs, []string{"random8273"}) || !slices.Equal(n.Details, []string{"cipher"}) {
		t.Errorf("cipher variant: %+v", n)
	}

	// The exact entry is Match's, never a near one of itself.
	addATSF(t, d, "go", "low", goHellos)
	all, err := d.Match(resultOf(goHellos))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || !all[0].Exact() || all[0].Label != "go" || all[1].Exact() || all[2].Exact() {
		t.Fatalf("Match = %+v, want the exact entry, then the two near ones", all)
	}

	// A probe with one ClientHello unanswered still finds the entries
	// that differ there only.
	partial := with(goHellos, 3, "")
	ms = nearOnly(t, d, resultOf(partial))
	if len(ms) != 2 || ms[0].Label != "alpn-variant" || ms[0].Near.Details[0] != "no answer" {
		t.Fatalf("partial probe: %+v, want the ALPN variant and go itself, differing on the unanswered ClientHello", ms)
	}

	// Removing an entry removes it from the index.
	if ok, err := d.Remove(KindATSF, ATSFID(alpn)); err != nil || !ok {
		t.Fatal(ok, err)
	}
	ms = nearOnly(t, d, resultOf(goHellos))
	if len(ms) != 1 || ms[0].Label != "cipher-variant" {
		t.Fatalf("after remove: %+v", ms)
	}

	// A STARTTLS entry is near only to a probe through the same protocol.
	smtp := resultOf(goHellos)
	smtp.StartTLS = "smtp"
	if ms := nearOnly(t, d, smtp); len(ms) != 0 {
		t.Fatalf("smtp probe near direct entries: %+v", ms)
	}
	if _, err := d.AddRecord(Record{Kind: KindATSF, Value: "smtp:" + ATSFID(alpn), Label: "smtp-variant", Hellos: alpn}); err != nil {
		t.Fatal(err)
	}
	if ms := nearOnly(t, d, smtp); len(ms) != 1 || ms[0].Label != "smtp-variant" {
		t.Fatalf("smtp probe: %+v", ms)
	}
}

func TestNearHellosValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Record
		want string
	}{
		{"nine", Record{Kind: KindATSF, Value: ATSFID(goHellos), Label: "x", Hellos: goHellos[:9]}, "9 strings, want 10"},
		{"wrong id", Record{Kind: KindATSF, Value: strings.Repeat("ab", 32), Label: "x", Hellos: goHellos}, "combined sha256"},
		{"jarm", Record{Kind: KindJARM, Value: strings.Repeat("ab", 31), Label: "x", Hellos: goHellos}, "only an atsf entry"},
		{"status_request", Record{Kind: KindATSF, Value: ATSFID(with(goHellos, 0, "771_c02b_5.-16.x")), Label: "x", Hellos: with(goHellos, 0, "771_c02b_5.-16.x")}, "status_request"},
	} {
		err := ValidateRecord(&tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// An update without hellos keeps the stored ones.
	d := openTemp(t)
	addATSF(t, d, "go", "high", goHellos)
	if err := d.Add(Record{Kind: KindATSF, Value: ATSFID(goHellos), Label: "go renamed"}); err != nil {
		t.Fatal(err)
	}
	r, _, _ := d.Get(KindATSF, ATSFID(goHellos))
	if r.Label != "go renamed" || len(r.Hellos) != 10 {
		t.Fatalf("after update: %+v", r)
	}
}

func TestNearJARMHalves(t *testing.T) {
	d := openTemp(t)
	probeJARM := "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"
	sameCiphers := probeJARM[:30] + strings.Repeat("1", 32)
	sameExts := strings.Repeat("2", 30) + probeJARM[30:]
	for _, e := range []struct{ v, label string }{{sameCiphers, "ciphers-equal"}, {sameExts, "exts-equal"}, {probeJARM, "exact"}, {strings.Repeat("3", 62), "other"}} {
		if err := d.Add(Record{Kind: KindJARM, Value: e.v, Label: e.label}); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := d.Match(stackprint.Result{Status: stackprint.StatusOK, JARM: probeJARM})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		s := m.Label
		if m.Near != nil {
			s += ":" + strings.Join(m.Near.Differs, ",")
			if txt := m.Near.Text(m.Label); !strings.HasPrefix(txt, "JARM ") {
				t.Errorf("text %q", txt)
			}
		}
		got = append(got, s)
	}
	if want := []string{"exact", "ciphers-equal:extensions", "exts-equal:ciphers"}; !slices.Equal(got, want) {
		t.Fatalf("matches = %v, want %v", got, want)
	}
}

// A file written before the near index existed gets it built by the next
// writable Open; a read-only one says it has none.
func TestNearIndexBuiltOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	alpn := with(goHellos, 3, "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-")
	addATSF(t, d, "alpn-variant", "high", alpn)
	// Make it an old file: no near buckets, no marker.
	err = d.update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketNearATSF, bucketNearJARM} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keyNearIndexed))
	})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if ro.NearIndexed() || len(nearOnly(t, ro, resultOf(goHellos))) != 0 {
		t.Fatal("read-only open of an unindexed file claims a near index")
	}
	ro.Close()

	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.NearIndexed() {
		t.Fatal("writable open did not build the near index")
	}
	if ms := nearOnly(t, d, resultOf(goHellos)); len(ms) != 1 || ms[0].Label != "alpn-variant" {
		t.Fatalf("near after rebuild: %+v", ms)
	}
}

func TestDescribeATSFDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"______<120", "771_1301_43.AwQ-51.29_16.AAUEaW1hcA___-", "ALPN"},
		{"771_c02b_16.AAkIaHR0cC8xLjE-0.____", "771_c02b_16.AAMCaDI-0.____", "ALPN"},
		{"771_c02b_16.x-0.____", "771_c02b_0.-16.x____", "extension order"},
		{"771_1301_43.AwQ-51.23_16.x__43.AwQ-51.23_-", "771_1301_43.AwQ-51.29_16.x___-", "key_share, HRR supported_versions, HRR key_share"},
		{"769_c009_35.____", "771_c009_35.____", "version"},
		{"771_c02b_35.____<40", "771_c02b_35.____", "alerts"},
		{"______<70", "______<40", "version, handshake_failure"},
		{"x", "", "no answer"},
	} {
		if got := DescribeATSFDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("%q vs %q: %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

func openTemp(t *testing.T) *DB {
	t.Helper()
	d, _ := openTest(t)
	return d
}

func TestListFilter(t *testing.T) {
	recs := []Record{
		{Kind: KindJARM, Value: "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d", Label: "Cobalt-Strike default", Source: "salesforce/jarm", Category: "c2"},
		{Kind: KindJARM, Value: "2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5", Label: "Go default", Source: "lab", Category: "stack"},
		{Kind: KindATSF, Value: "smtp:" + strings.Repeat("ab", 32), Label: "mail c2", Source: "Lab", Category: "C2"},
	}
	for _, tc := range []struct {
		f    ListFilter
		want []string
	}{
		{ListFilter{ValuePrefix: "07D1"}, []string{"Cobalt-Strike default"}},
		{ListFilter{ValuePrefix: "smtp:abab"}, []string{"mail c2"}},
		{ListFilter{Label: "cobalt"}, []string{"Cobalt-Strike default"}},
		{ListFilter{Source: "lab"}, []string{"Go default", "mail c2"}},
		{ListFilter{Category: "c2", Source: "lab"}, []string{"mail c2"}},
		{ListFilter{}, []string{"Cobalt-Strike default", "Go default", "mail c2"}},
	} {
		var got []string
		for _, r := range tc.f.Apply(recs) {
			got = append(got, r.Label)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}
