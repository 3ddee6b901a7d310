package tailer

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/stackprint/stackprint"
)

// EveParser parses Suricata eve.json lines. It turns "tls" events, "flow"
// events with app_proto tls and "alert" events that carry a tls block (or
// app_proto tls) into events; every other event type is skipped. Only TCP
// is kept. It has no state between lines.
type EveParser struct {
	source string
	strs   strArena // the strings events keep
}

// NewEveParser returns a parser whose events carry Source = source.
func NewEveParser(source string) *EveParser { return &EveParser{source: source} }

// ParseLine parses one eve line. It returns (event, true, nil) for a TLS
// event, (zero, false, nil) for a blank line or another event type, and an
// error naming the offending field for a malformed line. Source is set;
// File and Offset are left to the caller.
func (p *EveParser) ParseLine(line []byte) (stackprint.Event, bool, error) {
	ev, c, err := p.parse(line)
	return ev, c == classEvent, err
}

func (p *EveParser) reset() {}

// eveEndpoint is one side of a flow as raw JSON values.
type eveEndpoint struct{ ip, port []byte }

type eveRaw struct {
	timestamp, flowID, eventType, proto, appProto, direction []byte
	src, dest                                                eveEndpoint
	hasTLS                                                   bool
	sni                                                      []byte
	flowSrc, flowDest                                        eveEndpoint
	flowStart                                                []byte
}

func (p *EveParser) parse(line []byte) (stackprint.Event, lineClass, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return stackprint.Event{}, classMeta, nil
	}
	it, err := newObjIter(line, 0)
	if err != nil {
		return stackprint.Event{}, classSkip, err
	}
	var r eveRaw
	var kind string
	for {
		key, kesc, ok, err := it.nextKey()
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if !ok {
			break
		}
		name := decodeKey(key, kesc)
		if it.i < len(line) && line[it.i] == '{' {
			switch string(name) {
			case "tls":
				// One pass over the (long) tls block.
				r.hasTLS = true
				sni, end, err := objStringAt(line, it.i, "sni")
				if err != nil {
					field := "tls"
					if errors.Is(err, errNotString) {
						field = "tls.sni"
					}
					return stackprint.Event{}, classSkip, fieldErr(field, nil, err)
				}
				r.sni, it.i = sni, end
				continue
			case "flow":
				end, err := p.flowBlock(line, it.i, &r)
				if err != nil {
					return stackprint.Event{}, classSkip, err
				}
				it.i = end
				continue
			}
		}
		val, err := it.value(key)
		if err != nil {
			return stackprint.Event{}, classSkip, err
		}
		if isNull(val) {
			continue
		}
		switch string(name) {
		case "event_type":
			et, err := jsonStringBytes(val)
			if err != nil {
				return stackprint.Event{}, classSkip, fieldErr("event_type", val, err)
			}
			switch string(et) {
			case "tls":
				kind = KindEveTLS
			case "flow":
				kind = KindEveFlow
			case "alert":
				kind = KindEveAlert
			default:
				// dns, http, stats, …: drop cheaply without reading on.
				return stackprint.Event{}, classSkip, nil
			}
			r.eventType = et
		case "timestamp":
			r.timestamp = val
		case "flow_id":
			r.flowID = val
		case "src_ip":
			r.src.ip = val
		case "src_port":
			r.src.port = val
		case "dest_ip":
			r.dest.ip = val
		case "dest_port":
			r.dest.port = val
		case "proto":
			r.proto = val
		case "app_proto":
			r.appProto = val
		case "direction":
			r.direction = val
		}
	}
	if j := skipSpace(line, it.i); j != len(line) {
		return stackprint.Event{}, classSkip, fmt.Errorf("trailing data after the JSON object at byte %d", j)
	}
	if kind == "" {
		return stackprint.Event{}, classSkip, fieldErr("event_type", nil, ErrMissingField)
	}
	appTLS := jsonStringIs(r.appProto, "tls")
	switch kind {
	case KindEveFlow:
		if !appTLS {
			return stackprint.Event{}, classSkip, nil
		}
	case KindEveAlert:
		if !r.hasTLS && !appTLS {
			return stackprint.Event{}, classSkip, nil
		}
	}
	if r.proto == nil {
		return stackprint.Event{}, classSkip, fieldErr("proto", nil, ErrMissingField)
	}
	if !isTCP(r.proto) {
		return stackprint.Event{}, classSkip, nil
	}
	return p.event(kind, &r)
}

// flowBlock reads the members we use of the "flow" object at b[i] and
// returns the index just past it.
func (p *EveParser) flowBlock(b []byte, i int, r *eveRaw) (int, error) {
	it, err := newObjIter(b, i)
	if err != nil {
		return 0, fieldErr("flow", nil, err)
	}
	for {
		key, val, kesc, ok, err := it.next()
		if err != nil {
			return 0, fieldErr("flow", nil, err)
		}
		if !ok {
			return it.i, nil
		}
		if isNull(val) {
			continue
		}
		switch string(decodeKey(key, kesc)) {
		case "src_ip":
			r.flowSrc.ip = val
		case "src_port":
			r.flowSrc.port = val
		case "dest_ip":
			r.flowDest.ip = val
		case "dest_port":
			r.flowDest.port = val
		case "start":
			r.flowStart = val
		}
	}
}

// objStringAt returns the decoded string member key of the JSON object at
// b[i] (nil when absent or null) and the index just past the object.
func objStringAt(b []byte, i int, key string) ([]byte, int, error) {
	it, err := newObjIter(b, i)
	if err != nil {
		return nil, 0, err
	}
	var found []byte
	for {
		k, val, kesc, ok, err := it.next()
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			return found, it.i, nil
		}
		if string(decodeKey(k, kesc)) == key && !isNull(val) {
			if found, err = jsonStringBytes(val); err != nil {
				return nil, 0, err
			}
			// Found: skip the rest of the object in one go.
			end, err := skipNested(b, it.i, 1)
			return found, end, err
		}
	}
}

// jsonStringIs reports whether the JSON value v is the string s (ASCII
// case-insensitive; no escapes expected).
func jsonStringIs(v []byte, s string) bool {
	return len(v) == len(s)+2 && v[0] == '"' && bytes.EqualFold(v[1:len(v)-1], []byte(s))
}

// isTCP accepts Suricata's "TCP" and the numeric forms it writes for
// protocols it has no name for.
func isTCP(v []byte) bool {
	if jsonStringIs(v, "tcp") || jsonStringIs(v, "6") || jsonStringIs(v, "006") {
		return true
	}
	return string(v) == "6"
}

// wellKnownTLSPort holds server ports that make a side of an alert the
// server when nothing better says so.
func wellKnownTLSPort(p uint16) bool {
	switch p {
	case 443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 5223, 8443, 9443:
		return true
	}
	return p < 1024
}

func (p *EveParser) endpoint(e eveEndpoint, prefix string) (netip.AddrPort, error) {
	if e.ip == nil {
		return netip.AddrPort{}, fieldErr(prefix+"ip", nil, ErrMissingField)
	}
	ipb, err := jsonStringBytes(e.ip)
	if err != nil {
		return netip.AddrPort{}, fieldErr(prefix+"ip", e.ip, errBadAddr)
	}
	a, ok := parseAddr(ipb)
	if !ok {
		return netip.AddrPort{}, fieldErr(prefix+"ip", e.ip, errBadAddr)
	}
	if e.port == nil {
		return netip.AddrPort{}, fieldErr(prefix+"port", nil, ErrMissingField)
	}
	port, ok := parsePort(e.port)
	if !ok {
		return netip.AddrPort{}, fieldErr(prefix+"port", e.port, errBadPort)
	}
	return netip.AddrPortFrom(a, port), nil
}

func (p *EveParser) event(kind string, r *eveRaw) (stackprint.Event, lineClass, error) {
	ev := stackprint.Event{Source: p.source, Kind: kind}

	// TS: the connection start (flow.start) when the record has it, else
	// the record's own timestamp.
	tsField, tsRaw := "timestamp", r.timestamp
	if r.flowStart != nil {
		tsField, tsRaw = "flow.start", r.flowStart
	}
	if tsRaw == nil {
		return stackprint.Event{}, classSkip, fieldErr(tsField, nil, ErrMissingField)
	}
	tsb, err := jsonStringBytes(tsRaw)
	if err != nil {
		return stackprint.Event{}, classSkip, fieldErr(tsField, tsRaw, errBadTime)
	}
	if ev.TS, err = parseISOTime(tsb); err != nil {
		return stackprint.Event{}, classSkip, fieldErr(tsField, tsRaw, err)
	}

	if r.flowID != nil {
		id, ok := parseUint64(r.flowID)
		if !ok {
			return stackprint.Event{}, classSkip, fieldErr("flow_id", r.flowID, errBadNumber)
		}
		ev.FlowID = id
	}

	src, err := p.endpoint(r.src, "src_")
	if err != nil {
		return stackprint.Event{}, classSkip, err
	}
	dest, err := p.endpoint(r.dest, "dest_")
	if err != nil {
		return stackprint.Event{}, classSkip, err
	}
	ev.Orig, ev.Resp = src, dest // tls and flow records follow the flow's direction
	if isJSONString(r.appProto) {
		// The protocol TLS was started from (smtp, imap, …); tls itself
		// and failed detection say nothing.
		if ap, err := jsonStringBytes(r.appProto); err == nil {
			if a := strings.ToLower(string(ap)); a != "tls" && a != "failed" {
				ev.Service = a
			}
		}
	}

	if kind == KindEveAlert {
		// An alert's src/dest follow the packet that matched: the server
		// can be src. Prefer the flow block, then direction, then ports.
		switch {
		case r.flowDest.ip != nil:
			fd, fs, err := p.flowEndpoints(r, src, dest)
			if err != nil {
				return stackprint.Event{}, classSkip, err
			}
			ev.Orig, ev.Resp = fs, fd
		case jsonStringIs(r.direction, "to_client"):
			ev.Orig, ev.Resp = dest, src
		case jsonStringIs(r.direction, "to_server"):
		case wellKnownTLSPort(src.Port()) && !wellKnownTLSPort(dest.Port()):
			ev.Orig, ev.Resp = dest, src
		}
	}

	if len(r.sni) > 0 {
		ev.SNI = canonicalSNI(r.sni, &p.strs)
	}
	return ev, classEvent, nil
}

// flowEndpoints returns (server, client) from an alert's flow block. A
// missing flow port is taken from the top-level side with the same address.
func (p *EveParser) flowEndpoints(r *eveRaw, src, dest netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	side := func(e eveEndpoint, prefix string) (netip.AddrPort, error) {
		if e.port != nil {
			return p.endpoint(e, prefix)
		}
		ipb, err := jsonStringBytes(e.ip)
		if err != nil {
			return netip.AddrPort{}, fieldErr(prefix+"ip", e.ip, errBadAddr)
		}
		a, ok := parseAddr(ipb)
		if !ok {
			return netip.AddrPort{}, fieldErr(prefix+"ip", e.ip, errBadAddr)
		}
		switch a {
		case dest.Addr():
			return netip.AddrPortFrom(a, dest.Port()), nil
		case src.Addr():
			return netip.AddrPortFrom(a, src.Port()), nil
		}
		return netip.AddrPort{}, fieldErr(prefix+"port", nil, ErrMissingField)
	}
	server, err := side(r.flowDest, "flow.dest_")
	if err != nil {
		return server, server, err
	}
	if r.flowSrc.ip == nil {
		// Only the server is named: the client is the other side.
		client := src
		if server.Addr() == src.Addr() && server.Port() == src.Port() {
			client = dest
		}
		return server, client, nil
	}
	client, err := side(r.flowSrc, "flow.src_")
	return server, client, err
}
