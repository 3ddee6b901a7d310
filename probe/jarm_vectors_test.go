package probe

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

// TestJARMCaptures replays every reference capture: the ClientHellos are
// rebuilt from the randomness found in them and must match byte for byte;
// each answer must parse to the reference's per-probe string; the raw string
// must hash to the reference JARM.
func TestJARMCaptures(t *testing.T) {
	caps := readJARMCaptures(t)
	names := make([]string, 0, len(caps))
	for n := range caps {
		names = append(names, n)
	}
	sort.Strings(names)
	specs := jarmProbeSpecs()
	var hellos, answers int
	for _, name := range names {
		c := caps[name]
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			var pieces []string
			timedOut := false
			for i, p := range c.Probes {
				if i >= len(specs) {
					t.Fatalf("%d probes in capture", len(c.Probes))
				}
				if p.ClientHello != "" {
					want := mustHex(t, p.ClientHello)
					hr, err := extractHelloRandom(want, specs[i])
					if err != nil {
						t.Fatalf("probe %d: %v", i+1, err)
					}
					if got := buildJARMHello(specs[i], c.Host, &hr); !bytes.Equal(got, want) {
						t.Errorf("probe %d: rebuilt ClientHello differs\n got %x\nwant %x", i+1, got, want)
					} else {
						hellos++
					}
				}
				switch {
				case p.Response != nil && *p.Response == "TIMEOUT":
					timedOut = true
				case p.Response == nil:
					pieces = append(pieces, jarmEmpty) // connect failed
				default:
					got := ParseJARMAnswer(mustHex(t, *p.Response))
					if p.Result != nil && got != *p.Result {
						t.Errorf("probe %d: parsed %q, reference %q", i+1, got, *p.Result)
					} else {
						answers++
					}
					pieces = append(pieces, got)
				}
				if timedOut {
					break
				}
			}
			raw := strings.Join(pieces, ",")
			if timedOut {
				raw = jarmRawEmpty // jarm.py's reaction to a timeout
			} else if raw != c.Raw {
				t.Errorf("raw\n got %s\nwant %s", raw, c.Raw)
			}
			h, err := JARMHash(raw)
			if err != nil {
				t.Fatalf("JARMHash: %v", err)
			}
			if h != c.JARM {
				t.Errorf("JARM %s, reference %s", h, c.JARM)
			}
			if timedOut && h != stackprint.ZeroJARM {
				t.Errorf("timeout run hashed to %s, want zero", h)
			}
		})
	}
	t.Logf("%d captures: %d ClientHellos rebuilt byte-identical, %d answers parsed as the reference", len(caps), hellos, answers)
}
