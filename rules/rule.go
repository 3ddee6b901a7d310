package rules

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Severities, weakest first.
var severities = []string{"info", "low", "medium", "high", "critical"}

// ValidSeverity reports whether s is one of info, low, medium, high,
// critical.
func ValidSeverity(s string) bool { return slices.Contains(severities, s) }

// Rule is one compiled rule. Its fields are read-only after Load.
type Rule struct {
	ID          string
	Name        string
	Description string
	Severity    string // used when there is no severity_expr or it yields no valid level
	Category    string
	SignatureID int
	Tags        []string
	EachMatch   bool // evaluate once per DB match, with match bound to it
	EachNear    bool // evaluate once per near match, with nearest bound to it
	Params      map[string]any
	When        string
	SeverityExr string
	Suppress    time.Duration // 0: every event alerts
	Simulate    bool
	Disabled    bool

	File string // where it was loaded from, for messages
	Line int

	when     *vm.Program
	severity *vm.Program
	values   []valueProg // the facts when reads, for Verdict.Values
}

// valueProg evaluates one fact a rule's condition reads ("match.kind").
type valueProg struct {
	name string
	prog *vm.Program
}

// Error is a problem in a rule file, located for an editor: file:line:col.
type Error struct {
	File   string
	Line   int // 0 when unknown
	Col    int // 0 when unknown
	Rule   string
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// DefaultCategory is the EVE alert.category of a rule that names none.
const DefaultCategory = "A Network Trojan was detected"

// sidBase and sidSpan place derived signature ids in the range Suricata
// and Snort keep for local rules (1000000-1999999), clear of the dataset
// rules in contrib/suricata (1970001-1970099).
const (
	sidBase = 1_900_000
	sidSpan = 60_000
)

var ruleIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ParseFile parses and compiles one rule file. name is used in messages.
// All problems found are returned, joined, each an *Error.
func ParseFile(name string, data []byte) ([]*Rule, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := yamlErrLine(err)
		reason := strings.TrimPrefix(err.Error(), "yaml: ")
		reason = strings.TrimPrefix(reason, fmt.Sprintf("line %d: ", line))
		return nil, &Error{File: name, Line: line, Reason: reason}
	}
	p := &parser{file: name}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: name, Line: 1, Reason: "empty rule file: want version and rules"}
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, p.at(top, "", "want a mapping with version and rules")
	}
	var out []*Rule
	sawRules := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch k.Value {
		case "version":
			var ver int
			if err := v.Decode(&ver); err != nil || ver != 1 {
				p.fail(v, "", fmt.Sprintf("version %q: only version 1 is known", v.Value))
			}
		case "rules":
			sawRules = true
			if v.Kind != yaml.SequenceNode {
				p.fail(v, "", "rules: want a list of rules")
				continue
			}
			for _, rn := range v.Content {
				if r := p.rule(rn); r != nil {
					out = append(out, r)
				}
			}
		default:
			p.fail(k, "", fmt.Sprintf("unknown key %q (want version, rules)", k.Value))
		}
	}
	if !sawRules {
		p.fail(top, "", "no rules key")
	}
	seen := map[string]*Rule{}
	for _, r := range out {
		if o := seen[r.ID]; o != nil {
			p.errs = append(p.errs, &Error{File: name, Line: r.Line, Rule: r.ID, Reason: fmt.Sprintf("duplicate id (also at line %d)", o.Line)})
		}
		seen[r.ID] = r
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return out, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) at(n *yaml.Node, rule, reason string) *Error {
	return &Error{File: p.file, Line: n.Line, Col: n.Column, Rule: rule, Reason: reason}
}

func (p *parser) fail(n *yaml.Node, rule, reason string) {
	p.errs = append(p.errs, p.at(n, rule, reason))
}

// rule decodes one rule mapping strictly and compiles it; nil on error.
func (p *parser) rule(n *yaml.Node) *Rule {
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", "a rule must be a mapping")
		return nil
	}
	nerr := len(p.errs)
	r := &Rule{File: p.file, Line: n.Line}
	var whenNode, sevNode *yaml.Node
	keys := map[string]*yaml.Node{}
	// The id first, so every later message can name the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			_ = n.Content[i+1].Decode(&r.ID)
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if prev := keys[k.Value]; prev != nil {
			p.fail(k, r.ID, fmt.Sprintf("key %q repeated (first at line %d)", k.Value, prev.Line))
			continue
		}
		keys[k.Value] = k
		var err error
		switch k.Value {
		case "id":
			err = scalar(v, &r.ID)
		case "name":
			err = scalar(v, &r.Name)
		case "description":
			err = scalar(v, &r.Description)
		case "severity":
			err = scalar(v, &r.Severity)
		case "severity_expr":
			err = scalar(v, &r.SeverityExr)
			sevNode = v
		case "category":
			err = scalar(v, &r.Category)
		case "sid":
			err = scalar(v, &r.SignatureID)
		case "tags":
			err = v.Decode(&r.Tags)
		case "each_match":
			err = scalar(v, &r.EachMatch)
		case "each_near":
			err = scalar(v, &r.EachNear)
		case "params":
			r.Params, err = decodeParams(v)
		case "when":
			err = scalar(v, &r.When)
			whenNode = v
		case "suppress":
			var s string
			if err = scalar(v, &s); err == nil {
				r.Suppress, err = time.ParseDuration(s)
				if err == nil && r.Suppress < 0 {
					err = errors.New("must not be negative")
				}
			}
		case "simulate":
			err = scalar(v, &r.Simulate)
		case "disabled":
			err = scalar(v, &r.Disabled)
		default:
			p.fail(k, r.ID, fmt.Sprintf("unknown key %q (want id, name, description, severity, severity_expr, category, sid, tags, each_match, each_near, params, when, suppress, simulate, disabled)", k.Value))
			continue
		}
		if err != nil {
			p.fail(v, r.ID, fmt.Sprintf("%s: %v", k.Value, cleanYAMLErr(err)))
		}
	}
	req := func(key, val string) {
		if strings.TrimSpace(val) == "" {
			at := n
			if keys[key] != nil {
				at = keys[key]
			}
			p.fail(at, r.ID, key+": required")
		}
	}
	req("id", r.ID)
	req("name", r.Name)
	req("severity", r.Severity)
	req("when", r.When)
	if r.ID != "" && !ruleIDPattern.MatchString(r.ID) {
		p.fail(valueOf(n, "id"), r.ID, "id: want lower case letters, digits and _, starting with a letter, at most 64")
	}
	if r.Severity != "" && !ValidSeverity(r.Severity) {
		p.fail(valueOf(n, "severity"), r.ID, fmt.Sprintf("severity %q: want one of %s", r.Severity, strings.Join(severities, ", ")))
	}
	if keys["sid"] != nil && (r.SignatureID < 1 || r.SignatureID > 1<<31-1) {
		p.fail(valueOf(n, "sid"), r.ID, fmt.Sprintf("sid %d: want 1..2147483647", r.SignatureID))
	}
	for _, t := range r.Tags {
		if t == "" || strings.ContainsAny(t, "\t\n\r,") {
			p.fail(valueOf(n, "tags"), r.ID, fmt.Sprintf("tag %q: must be non-empty, without tabs, newlines or commas", t))
		}
	}
	for _, s := range []struct{ key, v string }{{"name", r.Name}, {"description", r.Description}, {"category", r.Category}} {
		if strings.ContainsAny(s.v, "\x00\r") {
			p.fail(valueOf(n, s.key), r.ID, s.key+": control characters are not allowed")
		}
	}
	if r.EachMatch && r.EachNear {
		p.fail(valueOf(n, "each_near"), r.ID, "each_match and each_near: a rule runs over the exact matches or over the near ones, not both")
	}
	if len(p.errs) > nerr {
		return nil
	}
	if r.Category == "" {
		r.Category = DefaultCategory
	}
	if r.SignatureID == 0 {
		r.SignatureID = derivedSID(r.ID)
	}
	r.Description = strings.TrimSpace(r.Description)
	if err := r.compile(); err != nil {
		var ce *compileError
		if errors.As(err, &ce) {
			node := whenNode
			if ce.severity {
				node = sevNode
			}
			line, col := exprPos(node, ce.err)
			p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Rule: r.ID, Reason: ce.Error()})
		} else {
			p.fail(n, r.ID, err.Error())
		}
		return nil
	}
	return r
}

// scalar decodes a scalar node, refusing lists and maps where one value is
// expected (yaml.v3 would otherwise report a Go type name).
func scalar(n *yaml.Node, dst any) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("want a single value")
	}
	return n.Decode(dst)
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

// decodeParams accepts a flat map of scalars: numbers, strings, booleans.
func decodeParams(n *yaml.Node) (map[string]any, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("want a mapping of names to values")
	}
	out := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !ruleIDPattern.MatchString(k.Value) {
			return nil, fmt.Errorf("name %q (line %d): want lower case letters, digits and _", k.Value, k.Line)
		}
		val, err := paramValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s (line %d): %w", k.Value, v.Line, err)
		}
		out[k.Value] = val
	}
	return out, nil
}

func paramValue(v *yaml.Node) (any, error) {
	if v.Kind != yaml.ScalarNode {
		return nil, errors.New("want a number, string or boolean")
	}
	var err error
	switch v.ShortTag() {
	case "!!int":
		var i int
		if err = v.Decode(&i); err == nil {
			return i, nil
		}
	case "!!float":
		var f float64
		if err = v.Decode(&f); err == nil {
			return f, nil
		}
	case "!!bool":
		var b bool
		if err = v.Decode(&b); err == nil {
			return b, nil
		}
	case "!!str":
		return v.Value, nil
	default:
		return nil, fmt.Errorf("%s: want a number, string or boolean", v.ShortTag())
	}
	return nil, err
}

// SetParam overrides a declared parameter, keeping its type (an int
// parameter accepts an integral float from YAML or JSON).
func (r *Rule) SetParam(name string, v any) error {
	old, ok := r.Params[name]
	if !ok {
		return fmt.Errorf("rule %s has no param %q (has: %s)", r.ID, name, strings.Join(sortedKeys(r.Params), ", "))
	}
	conv, err := convertParam(old, v)
	if err != nil {
		return fmt.Errorf("rule %s param %s: %w", r.ID, name, err)
	}
	params := make(map[string]any, len(r.Params))
	for k, x := range r.Params {
		params[k] = x
	}
	params[name] = conv
	r.Params = params
	return nil
}

func convertParam(old, v any) (any, error) {
	switch old.(type) {
	case int:
		switch x := v.(type) {
		case int:
			return x, nil
		case float64:
			if x == float64(int(x)) {
				return int(x), nil
			}
		}
	case float64:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case float64:
			return x, nil
		}
	case bool:
		if x, ok := v.(bool); ok {
			return x, nil
		}
	case string:
		if x, ok := v.(string); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("value %v (%T) does not fit the declared %T", v, v, old)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func derivedSID(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return sidBase + int(h.Sum32()%sidSpan)
}

type compileError struct {
	severity bool // in severity_expr, not when
	err      *file.Error
	msg      string
}

func (e *compileError) Error() string {
	where := "when"
	if e.severity {
		where = "severity_expr"
	}
	if e.err != nil {
		return fmt.Sprintf("%s: %s", where, e.err.Message)
	}
	return fmt.Sprintf("%s: %s", where, e.msg)
}

// compile type-checks both expressions against Env with the params bound
// as constants (so regexes in them compile once, here).
func (r *Rule) compile() error {
	paths := &pathCollector{}
	prog, err := compileExpr(r.When, r.Params, expr.AsBool(), expr.Patch(paths))
	if err != nil {
		return markSeverity(err, false)
	}
	r.when = prog
	if r.SeverityExr != "" {
		prog, err := compileExpr(r.SeverityExr, r.Params, expr.AsKind(reflect.String), expr.Patch(paths))
		if err != nil {
			return markSeverity(err, true)
		}
		r.severity = prog
	}
	r.values = nil
	for _, name := range paths.maximal() {
		p, err := expr.Compile(name, expr.Env(&Env{}))
		if err != nil {
			continue // not a fact of the environment (a closure's variable)
		}
		r.values = append(r.values, valueProg{name, p})
	}
	return nil
}

func markSeverity(err error, sev bool) error {
	var ce *compileError
	if errors.As(err, &ce) {
		ce.severity = sev
		return ce
	}
	return err
}

// pathCollector records the environment paths an expression reads
// (event.sni, nearest.agree), params excluded: they are constants.
type pathCollector struct{ paths []string }

func (c *pathCollector) Visit(node *ast.Node) {
	if p, ok := envPath(*node); ok && !strings.HasPrefix(p, "params") && !slices.Contains(c.paths, p) {
		c.paths = append(c.paths, p)
	}
}

// maximal drops paths that only lead to a longer one (match when
// match.kind is read too), in first-seen order.
func (c *pathCollector) maximal() []string {
	var out []string
	for _, p := range c.paths {
		longer := slices.ContainsFunc(c.paths, func(q string) bool { return strings.HasPrefix(q, p+".") || strings.HasPrefix(q, p+"[") })
		if !longer {
			out = append(out, p)
		}
	}
	return out
}

// envPath renders an identifier or a chain of string members on one.
func envPath(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n.Value, true
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			return "", false
		}
		base, ok := envPath(n.Node)
		if !ok {
			return "", false
		}
		return base + "." + prop.Value, true
	}
	return "", false
}

func compileExpr(src string, params map[string]any, as expr.Option, more ...expr.Option) (*vm.Program, error) {
	pp := &paramPatcher{params: params}
	opts := append([]expr.Option{
		expr.Env(&Env{}),
		as,
		expr.Patch(pp),
		expr.Function("in_cidr", inCIDR, new(func(string, ...string) bool)),
	}, more...)
	prog, err := expr.Compile(src, opts...)
	if pp.unknown != nil {
		fe := &file.Error{Location: pp.unknown.Location(), Message: fmt.Sprintf("unknown param %q (declared: %s)", pp.unknownName, strings.Join(sortedKeys(params), ", "))}
		fe.Bind(file.NewSource(src))
		return nil, &compileError{err: fe}
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &compileError{err: fe}
		}
		return nil, &compileError{msg: err.Error()}
	}
	return prog, nil
}

// paramPatcher replaces params.NAME (or params["NAME"]) by the value as a
// literal before type checking.
type paramPatcher struct {
	params      map[string]any
	unknown     ast.Node
	unknownName string
}

func (p *paramPatcher) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "params" {
		return
	}
	name, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	v, ok := p.params[name.Value]
	if !ok {
		if p.unknown == nil {
			p.unknown, p.unknownName = *node, name.Value
		}
		return
	}
	var lit ast.Node
	switch x := v.(type) {
	case int:
		lit = &ast.IntegerNode{Value: x}
	case float64:
		lit = &ast.FloatNode{Value: x}
	case bool:
		lit = &ast.BoolNode{Value: x}
	case string:
		lit = &ast.StringNode{Value: x}
	default:
		return
	}
	ast.Patch(node, lit)
}

// inCIDR reports whether ip lies in one of the prefixes (a bare address is
// a /32 or /128). An unparsable ip is in none; a bad prefix is an error.
func inCIDR(params ...any) (any, error) {
	ip, err := netip.ParseAddr(params[0].(string))
	if err != nil {
		return false, nil
	}
	ip = ip.Unmap()
	for _, p := range params[1:] {
		s := p.(string)
		var pfx netip.Prefix
		if strings.Contains(s, "/") {
			pfx, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if err != nil {
			return false, fmt.Errorf("in_cidr: %q is not a prefix", s)
		}
		if pfx.Contains(ip) {
			return true, nil
		}
	}
	return false, nil
}

// exprPos maps a position inside an expression to the YAML file. Plain
// and quoted scalars start at the node; block scalars (| and >) on the next
// line, with the column then unknown.
func exprPos(n *yaml.Node, fe *file.Error) (line, col int) {
	if n == nil {
		return 0, 0
	}
	if fe == nil || fe.Line < 1 {
		return n.Line, n.Column
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return n.Line + fe.Line, 0
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if fe.Line == 1 {
			return n.Line, n.Column + 1 + fe.Column
		}
	default:
		if fe.Line == 1 {
			return n.Line, n.Column + fe.Column
		}
	}
	return n.Line + fe.Line - 1, 0
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return 0
}

func cleanYAMLErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	return s
}
