package zeekread

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

	"github.com/stackprint/stackprint/zeeklog"
)

// Record is one record read back from a Zeek log: column name → value,
// in the Go types zeeklog.Log.Write takes (time.Time in UTC, time.Duration,
// string, netip.Addr, uint16 for port, uint64 for count, int64, float64,
// bool, []string). Unset columns are absent.
type Record map[string]any

// Header is one header block of a TSV log.
type Header struct {
	Separator, SetSeparator, EmptyField, UnsetField string
	Path, Open, Close                               string
	Fields                                          []zeeklog.Field
}

// TSVFile is a TSV Zeek log read back: its header blocks (a file can
// hold several) and every record.
type TSVFile struct {
	Headers []Header
	Records []Record
}

// ReadTSV parses a Zeek ASCII log driven by its own header, as Zeek's
// input framework and zeek-cut do: separators and markers from the header
// (zeeklog.Header, as the tailer reads them), columns by #fields and
// #types, "-" unset, "(empty)" an empty string or set, \xHH and \\
// decoded. It reads any Zeek TSV log whose types it knows, not only
// stackprint's.
func ReadTSV(r io.Reader) (*TSVFile, error) {
	out := &TSVFile{}
	var zh zeeklog.Header
	var h *Header
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#separator ") {
			zh.Reset()
			if _, err := zh.Line([]byte(line)); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			out.Headers = append(out.Headers, Header{})
			h = &out.Headers[len(out.Headers)-1]
			h.set(&zh)
			continue
		}
		if h == nil {
			return nil, fmt.Errorf("line %d: no #separator header", n)
		}
		if strings.HasPrefix(line, "#") {
			key, err := zh.Line([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if key == "types" && len(zh.Types) != len(zh.Fields) {
				return nil, fmt.Errorf("line %d: %d types for %d fields", n, len(zh.Types), len(zh.Fields))
			}
			h.set(&zh)
			continue
		}
		if len(h.Fields) == 0 {
			return nil, fmt.Errorf("line %d: record before #fields", n)
		}
		vals := strings.Split(line, h.Separator)
		if len(vals) != len(h.Fields) {
			return nil, fmt.Errorf("line %d: %d values for %d fields", n, len(vals), len(h.Fields))
		}
		rec := Record{}
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

// set copies the header state into h's strings.
func (h *Header) set(z *zeeklog.Header) {
	h.Separator, h.SetSeparator = string(z.Separator), string(z.SetSeparator)
	h.EmptyField, h.UnsetField = string(z.Empty), string(z.Unset)
	h.Path, h.Open, h.Close = string(z.Path), string(z.Open), string(z.Close)
	h.Fields = nil
	if len(z.Fields) > 0 {
		h.Fields = make([]zeeklog.Field, len(z.Fields))
		for i, f := range z.Fields {
			h.Fields[i].Name = string(f)
			if len(z.Types) == len(z.Fields) {
				h.Fields[i].Type = string(z.Types[i])
			}
		}
	}
}

func tsvParse(typ, raw string, h *Header) (any, error) {
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
				parts[i] = zeeklog.Unescape(p)
			}
		}
		return parts, nil
	}
	switch typ {
	case "string", "enum":
		if raw == h.EmptyField {
			return "", nil
		}
		return zeeklog.Unescape(raw), nil
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

// ReadJSON parses a Zeek JSON log (one object per line, flat dotted
// names), typing values by schema; names not in the schema are kept as
// decoded. Strings are returned as written: Zeek's JSON \xHH escaping is
// not reversible (the text \x07 and the byte 0x07 look the same).
func ReadJSON(r io.Reader, schema zeeklog.Schema) ([]Record, error) {
	types := map[string]string{}
	for _, f := range schema.Fields {
		types[f.Name] = f.Type
	}
	var out []Record
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
		rec := Record{}
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
