package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ZeekRecord is one record read back from a Zeek log: column name → value,
// in the Go types ZeekLog.Write takes (time.Time in UTC, time.Duration,
// string, netip.Addr, uint16 for port, uint64 for count, int64, float64,
// bool, []string). Unset columns are absent.
type ZeekRecord map[string]any

// ZeekTSVHeader is one header block of a TSV log.
type ZeekTSVHeader struct {
	Separator, SetSeparator, EmptyField, UnsetField string
	Path, Open, Close                               string
	Fields                                          []ZeekField
}

// ZeekTSVFile is a TSV Zeek log read back: its header blocks (a file can
// hold several) and every record.
type ZeekTSVFile struct {
	Headers []ZeekTSVHeader
	Records []ZeekRecord
}

// ReadZeekTSV parses a Zeek ASCII log driven by its own header, as Zeek's
// input framework and zeek-cut do: separators and markers from the header,
// columns by #fields and #types, "-" unset, "(empty)" an empty string or
// set, \xHH and \\ decoded. It reads any Zeek TSV log whose types it knows,
// not only stackprint's.
func ReadZeekTSV(r io.Reader) (*ZeekTSVFile, error) {
	out := &ZeekTSVFile{}
	var h *ZeekTSVHeader
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "#separator "); ok {
			out.Headers = append(out.Headers, ZeekTSVHeader{Separator: zeekUnescape(v), SetSeparator: ",", EmptyField: emptyField, UnsetField: unsetField})
			h = &out.Headers[len(out.Headers)-1]
			continue
		}
		if h == nil {
			return nil, fmt.Errorf("line %d: no #separator header", n)
		}
		if strings.HasPrefix(line, "#") {
			k, v, _ := strings.Cut(line[1:], h.Separator)
			switch k {
			case "set_separator":
				h.SetSeparator = zeekUnescape(v)
			case "empty_field":
				h.EmptyField = v
			case "unset_field":
				h.UnsetField = v
			case "path":
				h.Path = v
			case "open":
				h.Open = v
			case "close":
				h.Close = v
			case "fields":
				names := strings.Split(v, h.Separator)
				h.Fields = make([]ZeekField, len(names))
				for i, nm := range names {
					h.Fields[i].Name = nm
				}
			case "types":
				types := strings.Split(v, h.Separator)
				if len(types) != len(h.Fields) {
					return nil, fmt.Errorf("line %d: %d types for %d fields", n, len(types), len(h.Fields))
				}
				for i, t := range types {
					h.Fields[i].Type = t
				}
			}
			continue
		}
		if len(h.Fields) == 0 {
			return nil, fmt.Errorf("line %d: record before #fields", n)
		}
		vals := strings.Split(line, h.Separator)
		if len(vals) != len(h.Fields) {
			return nil, fmt.Errorf("line %d: %d values for %d fields", n, len(vals), len(h.Fields))
		}
		rec := ZeekRecord{}
		for i, f := range h.Fields {
			raw := vals[i]
			if raw == h.UnsetField {
				continue
			}
			v, err := tsvParse(f.Type, raw, h)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, f.Name, err)
			}
			rec[f.Name] = v
		}
		out.Records = append(out.Records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read zeek log: %w", err)
	}
	return out, nil
}

func tsvParse(typ, raw string, h *ZeekTSVHeader) (any, error) {
	if strings.HasPrefix(typ, "set[") || strings.HasPrefix(typ, "vector[") {
		if raw == h.EmptyField {
			return []string{}, nil
		}
		// An empty string element is written as the empty marker too, so
		// a set holding only "" reads back as an empty set, as in Zeek.
		parts := strings.Split(raw, h.SetSeparator)
		for i, p := range parts {
			if p == h.EmptyField {
				parts[i] = ""
			} else {
				parts[i] = zeekUnescape(p)
			}
		}
		return parts, nil
	}
	switch typ {
	case "string", "enum":
		if raw == h.EmptyField {
			return "", nil
		}
		return zeekUnescape(raw), nil
	case "time":
		us, err := parseMicros(raw)
		if err != nil {
			return nil, err
		}
		return time.UnixMicro(us).UTC(), nil
	case "interval":
		us, err := parseMicros(raw)
		if err != nil {
			return nil, err
		}
		return time.Duration(us) * time.Microsecond, nil
	}
	return scalarParse(typ, raw)
}

func scalarParse(typ, raw string) (any, error) {
	switch typ {
	case "addr":
		a, err := netip.ParseAddr(raw)
		if err != nil {
			return nil, err
		}
		return a, nil
	case "port":
		p, err := strconv.ParseUint(raw, 10, 16)
		if err != nil {
			return nil, err
		}
		return uint16(p), nil
	case "count":
		return strconv.ParseUint(raw, 10, 64)
	case "int":
		return strconv.ParseInt(raw, 10, 64)
	case "double":
		return strconv.ParseFloat(raw, 64)
	case "bool":
		switch raw {
		case "T", "true":
			return true, nil
		case "F", "false":
			return false, nil
		}
		return nil, fmt.Errorf("bool %q", raw)
	}
	return nil, fmt.Errorf("unsupported Zeek type %s", typ)
}

// parseMicros reads seconds with up to six decimals exactly, without a
// float round trip.
func parseMicros(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 6 {
		return 0, fmt.Errorf("more than microsecond precision: %q", s)
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, err
	}
	var us int64
	if frac != "" {
		if us, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil {
			return 0, err
		}
	}
	v := sec*1e6 + us
	if neg {
		v = -v
	}
	return v, nil
}

// zeekUnescape decodes \xHH and \\ like Zeek's get_unescaped_string.
func zeekUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if s[i+1] == '\\' {
				b.WriteByte('\\')
				i++
				continue
			}
			if s[i+1] == 'x' && i+3 < len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
					b.WriteByte(byte(v))
					i += 3
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ReadZeekJSON parses a Zeek JSON log (one object per line, flat dotted
// names), typing values by schema; names not in the schema are kept as
// decoded. Strings are returned as written: Zeek's JSON \xHH escaping is
// not reversible (the text \x07 and the byte 0x07 look the same).
func ReadZeekJSON(r io.Reader, schema ZeekSchema) ([]ZeekRecord, error) {
	types := map[string]string{}
	for _, f := range schema.Fields {
		types[f.Name] = f.Type
	}
	var out []ZeekRecord
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		rec := ZeekRecord{}
		for k, v := range raw {
			if v == nil {
				continue // json_include_unset_fields=T writes null
			}
			typ, ok := types[k]
			if !ok {
				rec[k] = v
				continue
			}
			tv, err := jsonParse(typ, v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, k, err)
			}
			rec[k] = tv
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read zeek json log: %w", err)
	}
	return out, nil
}

func jsonParse(typ string, v any) (any, error) {
	if strings.HasPrefix(typ, "set[") || strings.HasPrefix(typ, "vector[") {
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want an array, got %T", v)
		}
		out := make([]string, len(arr))
		for i, x := range arr {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: want a string, got %T", i, x)
			}
			out[i] = s
		}
		return out, nil
	}
	switch typ {
	case "string", "enum":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		return s, nil
	case "addr":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		return scalarParse(typ, s)
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want a bool, got %T", v)
		}
		return b, nil
	}
	num, ok := v.(json.Number)
	if !ok {
		return nil, fmt.Errorf("want a number, got %T", v)
	}
	switch typ {
	case "time", "interval":
		us, err := parseMicros(num.String())
		if err != nil {
			// Other writers' epoch forms (1e9 notation): via float.
			f, ferr := num.Float64()
			if ferr != nil {
				return nil, err
			}
			us = int64(math.Round(f * 1e6))
		}
		if typ == "time" {
			return time.UnixMicro(us).UTC(), nil
		}
		return time.Duration(us) * time.Microsecond, nil
	case "double":
		return num.Float64()
	}
	return scalarParse(typ, num.String())
}
