package db

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func TestValidateRecord(t *testing.T) {
	sha256 := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		in      Record
		want    Record // compared when wantErr is ""
		wantErr string // substring naming the field and value
	}{
		{
			name: "jarm ok, confidence defaults to medium",
			in:   Record{Kind: "jarm", Value: jarmA, Label: "cs"},
			want: Record{Kind: "jarm", Value: jarmA, Label: "cs", Confidence: "medium"},
		},
		{
			name: "upper case and spaces normalised",
			in:   Record{Kind: " JARM ", Value: " " + strings.ToUpper(jarmA) + " ", Label: " cs ", Source: " s ", Confidence: "HIGH"},
			want: Record{Kind: "jarm", Value: jarmA, Label: "cs", Source: "s", Confidence: "high"},
		},
		{
			name: "cert_sha1 colons stripped",
			in:   Record{Kind: "cert_sha1", Value: "6A:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC", Label: "x", Confidence: "low"},
			want: Record{Kind: "cert_sha1", Value: sha1A, Label: "x", Confidence: "low"},
		},
		{
			name: "cert_sha256",
			in:   Record{Kind: "cert_sha256", Value: sha256, Label: "x"},
			want: Record{Kind: "cert_sha256", Value: sha256, Label: "x", Confidence: "medium"},
		},
		{
			name: "atsf",
			in:   Record{Kind: "atsf", Value: sha256, Label: "x"},
			want: Record{Kind: "atsf", Value: sha256, Label: "x", Confidence: "medium"},
		},
		{name: "jarm too short", in: Record{Kind: "jarm", Value: jarmA[:61], Label: "x"}, wantErr: `value "` + jarmA[:61] + `": a jarm must be 62 hex characters, got 61`},
		{name: "jarm too long", in: Record{Kind: "jarm", Value: jarmA + "0", Label: "x"}, wantErr: "got 63"},
		{name: "jarm empty", in: Record{Kind: "jarm", Label: "x"}, wantErr: "got 0"},
		{name: "jarm not hex", in: Record{Kind: "jarm", Value: "g" + jarmA[1:], Label: "x"}, wantErr: "not hex at character 1"},
		{name: "zero jarm", in: Record{Kind: "jarm", Value: stackprint.ZeroJARM, Label: "x"}, wantErr: "all-zero JARM"},
		{name: "jarm colons are not stripped", in: Record{Kind: "jarm", Value: jarmA[:60] + ":" + jarmA[60:], Label: "x"}, wantErr: "got 63"},
		{name: "cert_sha1 wrong length", in: Record{Kind: "cert_sha1", Value: sha256, Label: "x"}, wantErr: "a cert_sha1 must be 40 hex characters, got 64"},
		{name: "unknown kind", in: Record{Kind: "ja3s", Value: jarmA, Label: "x"}, wantErr: `kind "ja3s": unknown`},
		{name: "label required", in: Record{Kind: "jarm", Value: jarmA, Label: "  "}, wantErr: "label: required"},
		{name: "label control char", in: Record{Kind: "jarm", Value: jarmA, Label: "a\tb"}, wantErr: `label "a\tb": control character`},
		{name: "bad confidence", in: Record{Kind: "jarm", Value: jarmA, Label: "x", Confidence: "sure"}, wantErr: `confidence "sure": want low, medium or high`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.in
			err := ValidateRecord(&r)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, tt.want) {
				t.Errorf("got  %+v\nwant %+v", r, tt.want)
			}
		})
	}
}
