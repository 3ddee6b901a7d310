package output

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/stackprint/stackprint"
)

// The constraints Suricata's EVE JSON schema (etc/schema.json in the
// Suricata repository) puts on what an alert record from stackprint can
// contain, written out here for the objects we emit: the top level, alert
// (and alert.metadata, alert.source, alert.target), tls, flow and
// metadata. Each object refuses keys it does not list
// (additionalProperties false) unless open is set; timestamp and
// event_type are required; timestamp has the schema's pattern.
type schemaNode struct {
	typ    string                 // object, array, string, integer, number, boolean
	props  map[string]*schemaNode // object: the keys it allows
	open   bool                   // object: other keys allowed too
	items  *schemaNode            // array
	need   []string               // object: required keys
	format *regexp.Regexp         // string
}

func obj(props map[string]*schemaNode) *schemaNode { return &schemaNode{typ: "object", props: props} }
func arr(items *schemaNode) *schemaNode            { return &schemaNode{typ: "array", items: items} }

var (
	sStr  = &schemaNode{typ: "string"}
	sInt  = &schemaNode{typ: "integer"}
	sBool = &schemaNode{typ: "boolean"}
	sNum  = &schemaNode{typ: "number"}
)

func eveSchema() *schemaNode {
	strs := arr(sStr)
	ipObj := obj(map[string]*schemaNode{"ip": sStr})
	hashStr := obj(map[string]*schemaNode{"hash": sStr, "string": sStr})
	top := obj(map[string]*schemaNode{
		// Top-level keys of an alert record (the schema has more, for other
		// event types; none of those may appear either).
		"timestamp": {typ: "string", format: regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+[+\-]\d+$`)},
		"flow_id":   sInt, "event_type": sStr, "src_ip": sStr, "src_port": sInt, "dest_ip": sStr, "dest_port": sInt,
		"proto": sStr, "direction": sStr, "app_proto": sStr, "tx_id": sInt, "pcap_cnt": sInt, "community_id": sStr,
		"vlan": arr(sNum),
		"alert": obj(map[string]*schemaNode{
			"action": sStr, "category": sStr, "gid": sInt, "rev": sInt, "rule": sStr, "severity": sInt,
			"signature": sStr, "signature_id": sInt, "xff": sStr,
			"metadata": obj(map[string]*schemaNode{
				"affected_product": strs, "attack_target": strs, "created_at": strs, "deployment": strs,
				"former_category": strs, "malware_family": strs, "policy": strs, "signature_severity": strs,
				"tag": strs, "updated_at": strs,
			}),
			"source": ipObj, "target": ipObj,
		}),
		"tls": obj(map[string]*schemaNode{
			"client":      obj(map[string]*schemaNode{"fingerprint": sStr, "issuerdn": sStr, "notafter": sStr, "notbefore": sStr, "serial": sStr, "subject": sStr}),
			"fingerprint": sStr, "from_proto": sStr, "issuerdn": sStr, "notafter": sStr, "notbefore": sStr, "serial": sStr,
			"session_resumed": sBool, "sni": sStr, "subject": sStr, "version": sStr, "ja3": hashStr, "ja3s": hashStr,
		}),
		"flow": obj(map[string]*schemaNode{
			"action": sStr, "age": sInt, "alerted": sBool, "bypass": sStr, "bytes_toclient": sInt, "bytes_toserver": sInt,
			"dest_ip": sStr, "dest_port": sInt, "end": sStr, "pkts_toclient": sInt, "pkts_toserver": sInt, "reason": sStr,
			"src_ip": sStr, "src_port": sInt, "start": sStr, "state": sStr,
		}),
		"metadata": obj(map[string]*schemaNode{
			"flowbits": strs,
			"flowvars": arr(&schemaNode{typ: "object", open: true, props: map[string]*schemaNode{"gid": sStr, "key": sStr, "value": sStr}}),
			"pktvars":  arr(obj(map[string]*schemaNode{"uid": sStr, "username": sStr})),
			"flowints": {typ: "object", open: true},
		}),
	})
	top.need = []string{"timestamp", "event_type"}
	return top
}

// check returns every violation of n by v, each with its JSON path.
func (n *schemaNode) check(path string, v any) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(f, a...)) }
	switch n.typ {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %T", v)
			return errs
		}
		for _, k := range n.need {
			if _, ok := m[k]; !ok {
				bad("required key %q missing", k)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if c, ok := n.props[k]; ok {
				errs = append(errs, c.check(path+"."+k, m[k])...)
			} else if !n.open {
				bad("key %q not allowed (additionalProperties false)", k)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("want an array, got %T", v)
			return errs
		}
		for i, x := range a {
			errs = append(errs, n.items.check(fmt.Sprintf("%s[%d]", path, i), x)...)
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			bad("want a string, got %T", v)
		} else if n.format != nil && !n.format.MatchString(s) {
			bad("%q does not match %s", s, n.format)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			bad("want an integer, got %v", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			bad("want a number, got %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean, got %T", v)
		}
	}
	return errs
}

// everyFieldAlert sets everything MarshalEVE can write.
func everyFieldAlert() stackprint.Alert {
	a := fixtureAlerts()[0]
	a.Event.FlowID = 42
	a.Simulated, a.Retro, a.Suppressed = true, true, 7
	a.Result.StartTLS = "smtp"
	a.Result.HTTP = &stackprint.HTTPFacts{Server: ""}
	a.Tags = []string{"fingerprint-db", "simulated"}
	return a
}

// MarshalEVE's output meets the schema for every fixture alert and for one
// with every optional field set. Before, the top-level "stackprint" object
// and the stackprint_* keys in alert.metadata broke it.
func TestEVEMeetsSuricataSchema(t *testing.T) {
	schema := eveSchema()
	as := append(fixtureAlerts(), everyFieldAlert())
	noSNI := fixtureAlerts()[2]
	noSNI.Event.SNI, noSNI.Result.Cert, noSNI.Match = "", nil, stackprint.Match{}
	noSNI.Event.Orig = netip.MustParseAddrPort("[::ffff:10.0.0.9]:5000")
	noSNI.TS = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	as = append(as, noSNI)
	for i, a := range as {
		line, err := MarshalEVE(a)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatal(err)
		}
		for _, e := range schema.check("$", v) {
			t.Errorf("alert %d: %s", i, e)
		}
		for _, obj := range []string{"alert", "flow", "metadata"} {
			if _, ok := v[obj]; !ok {
				t.Errorf("alert %d: no %s object", i, obj)
			}
		}
	}
	// The checker itself refuses what the schema refuses.
	for _, bad := range []string{
		`{"timestamp":"2025-01-01T00:00:00.000000+0000","event_type":"alert","stackprint":{}}`,
		`{"timestamp":"2025-01-01T00:00:00.000000+0000","event_type":"alert","alert":{"metadata":{"stackprint_rule":["x"]}}}`,
		`{"timestamp":"2025-01-01T00:00:00Z","event_type":"alert"}`,
		`{"timestamp":"2025-01-01T00:00:00.000000+0000","event_type":"alert","tls":{"jarm":"x"}}`,
		`{"timestamp":"2025-01-01T00:00:00.000000+0000","event_type":"alert","flow":{"src_port":"1"}}`,
		`{"event_type":"alert"}`,
	} {
		var v map[string]any
		if err := json.Unmarshal([]byte(bad), &v); err != nil {
			t.Fatal(err)
		}
		if errs := schema.check("$", v); len(errs) == 0 {
			t.Errorf("the checker accepts %s", bad)
		}
	}
}
