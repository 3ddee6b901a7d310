package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stackprint/stackprint/configs"
)

// Source is one YAML document of the effective config, in the order
// it is applied: the embedded default, the file, then its drop-ins.
type Source struct {
	Name string
	Data []byte
}

// DropInDir is where packagers and operators put extra config files: the
// conf.d directory beside the config file, its *.yaml read in name order.
func DropInDir(path string) string { return filepath.Join(filepath.Dir(path), "conf.d") }

// Sources lists what Load(path) reads.
func Sources(path string) ([]Source, error) {
	srcs := []Source{{"embedded default config", configs.DefaultYAML}}
	if path == "" {
		return srcs, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	srcs = append(srcs, Source{path, b})
	dropIns, err := filepath.Glob(filepath.Join(DropInDir(path), "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("config drop-ins: %w", err)
	}
	slices.Sort(dropIns)
	for _, p := range dropIns {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read config drop-in: %w", err)
		}
		srcs = append(srcs, Source{p, b})
	}
	return srcs, nil
}

// configPositions maps a field path (db.path, inputs[2].format) to the
// file:line that last set it, so a validation error can point there.
type configPositions map[string]string

// lookup returns the position of field or of its nearest parent.
func (p configPositions) lookup(field string) string {
	for f := field; f != ""; {
		if pos, ok := p[f]; ok {
			return pos
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return ""
}

// ParseSources decodes every source over the previous ones and validates
// the result once. It reports every problem in one pass, each with its
// file, line and field path: syntax errors, unknown keys, unset ${VAR}s,
// values of the wrong type and failed checks. A list a later source sets
// replaces the earlier list; a map is merged.
func ParseSources(srcs []Source) (*Config, error) {
	var (
		cfg  Config
		errs []error
		pos  = configPositions{}
	)
	for _, src := range srcs {
		var root yaml.Node
		if err := yaml.Unmarshal(src.Data, &root); err != nil {
			errs = append(errs, syntaxError{fmt.Errorf("%s: %s", src.Name, strings.TrimPrefix(err.Error(), "yaml: "))})
			continue
		}
		if len(root.Content) == 0 {
			continue // empty file
		}
		w := &configWalk{src: src.Name, pos: pos, lines: map[int]string{}}
		w.walk(root.Content[0], reflect.TypeFor[Config](), "")
		errs = append(errs, w.errs...)
		if err := root.Content[0].Decode(&cfg); err != nil {
			errs = append(errs, w.typeErrors(err)...)
		}
	}
	if len(errs) > 0 && slices.ContainsFunc(errs, isSyntaxError) {
		return nil, errors.Join(errs...) // the rest of a broken file is unknown
	}
	for _, err := range cfg.validate() {
		if fe, ok := errors.AsType[*FieldError](err); ok && fe.Pos == "" {
			fe.Pos = pos.lookup(fe.Field)
		} else if !ok {
			// The rules package names rule ids, not keys: point at the key.
			for prefix, field := range map[string]string{"rules: disabled rule": "rules.disabled",
				"rules: params for rule": "rules.params", "rules: suppress window": "rules.suppress"} {
				if p := pos.lookup(field); strings.HasPrefix(err.Error(), prefix) && p != "" {
					err = fmt.Errorf("%s: %s: %w", p, field, err)
				}
			}
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// syntaxError marks a source that is not YAML at all.
type syntaxError struct{ error }

func isSyntaxError(err error) bool { _, ok := err.(syntaxError); return ok }

// configWalk visits one source's node tree along the Config type.
type configWalk struct {
	src   string
	pos   configPositions
	lines map[int]string // line → field path, to name the field of a type error
	errs  []error
}

func (w *configWalk) at(n *yaml.Node) string { return fmt.Sprintf("%s:%d", w.src, n.Line) }

func (w *configWalk) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.ScalarNode:
		w.expand(n, path)
		if _, ok := w.lines[n.Line]; !ok {
			w.lines[n.Line] = path
		}
	case yaml.SequenceNode:
		// The list replaces the earlier one: forget its elements' places.
		for k := range w.pos {
			if strings.HasPrefix(k, path+"[") {
				delete(w.pos, k)
			}
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.pos[p] = w.at(c)
			if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
				w.walk(c, t.Elem(), p)
			} else {
				w.walk(c, reflect.TypeFor[any](), p)
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var (
				ft    reflect.Type
				known = true
			)
			switch t.Kind() {
			case reflect.Struct:
				ft, known = yamlField(t, k.Value)
			case reflect.Map:
				ft = t.Elem()
			default:
				ft = reflect.TypeFor[any]()
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if !known {
				w.errs = append(w.errs, fmt.Errorf("%s: unknown key %q", w.at(k), p))
				continue
			}
			w.pos[p] = w.at(k)
			if _, ok := w.lines[k.Line]; !ok || v.Line != k.Line {
				w.lines[k.Line] = p
			}
			w.walk(v, ft, p)
		}
	}
}

// yamlField returns the type of the field of struct t that key decodes.
func yamlField(t reflect.Type, key string) (reflect.Type, bool) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f.Type, true
		}
	}
	return nil, false
}

// reEnv matches ${NAME}; $${NAME} is the escape for a literal ${NAME}.
var reEnv = regexp.MustCompile(`\$?\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand replaces ${NAME} in a scalar value with the environment variable.
// An unset variable is an error (an empty value would be silently wrong);
// a variable set to "" is taken as given.
func (w *configWalk) expand(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	out := reEnv.ReplaceAllStringFunc(n.Value, func(m string) string {
		if strings.HasPrefix(m, "$$") {
			return m[1:]
		}
		name := m[2 : len(m)-1]
		v, ok := os.LookupEnv(name)
		if !ok {
			w.errs = append(w.errs, &FieldError{Field: path, Value: n.Value, Reason: "environment variable " + name + " is not set", Pos: w.at(n)})
		}
		return v
	})
	if out != n.Value {
		n.Value = out
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = "" // resolve the expanded plain value again: ${PORT} may be a number
		}
	}
}

// EscapeEnvRefs writes every literal ${ in n's scalars as $${, the form
// expand turns back into ${.
func EscapeEnvRefs(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode {
		n.Value = strings.ReplaceAll(n.Value, "${", "$${")
	}
	for _, c := range n.Content {
		EscapeEnvRefs(c)
	}
}

var reTypeErrLine = regexp.MustCompile(`^line (\d+): `)

// typeErrors turns the decoder's type errors into file:line: field: … in
// the config's own terms.
func (w *configWalk) typeErrors(err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{fmt.Errorf("%s: %w", w.src, err)}
	}
	out := make([]error, 0, len(te.Errors))
	for _, m := range te.Errors {
		prefix := w.src
		if sub := reTypeErrLine.FindStringSubmatch(m); sub != nil {
			line, _ := strconv.Atoi(sub[1])
			prefix = fmt.Sprintf("%s:%d", w.src, line)
			if f := w.lines[line]; f != "" {
				prefix += ": " + f
			}
			m = m[len(sub[0]):]
		}
		out = append(out, fmt.Errorf("%s: %s", prefix, friendlyYAMLMessage(m)))
	}
	return out
}
