package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"

	defaultrules "github.com/stackprint/stackprint/configs/rules"

	"github.com/stackprint/stackprint"
)

// Options says which rules an Engine runs and how.
type Options struct {
	// NoBuiltin leaves out the embedded default rules (configs/rules).
	NoBuiltin bool
	// Files are rule files, directories (their *.yaml and *.yml) or glob
	// patterns, loaded after the defaults in the order given. A rule with
	// the id of a default rule replaces it; any other repeated id is an
	// error.
	Files []string
	// Disabled rule ids are loaded (and checked) but never run.
	Disabled []string
	// Params overrides declared rule params: rule id → param → value.
	Params map[string]map[string]any
	// Suppress overrides rules' suppression windows: rule id → window, 0
	// for none; the id "*" sets every rule's, and a rule's own id beats it.
	Suppress map[string]time.Duration
	// Simulation marks every alert simulated; a rule's simulate: true
	// marks only its own.
	Simulation bool
	// Baselines of monitored servers, for drift rules; nil: none known.
	Baselines Baselines
	// SuppressCapacity bounds the (orig ip, target, rule) suppression
	// table; the least recently alerted keys are forgotten first (they
	// alert again). Default 100000.
	SuppressCapacity int
	Logger           *slog.Logger
	Now              func() time.Time // default time.Now
}

// RuleSet is a loaded, compiled set of rules, ready to run.
type RuleSet struct {
	Rules     []*Rule // in load order, disabled ones included
	opts      Options
	baselines Baselines
}

// Load reads and compiles the rules opts names. Every problem in every file
// is reported, each an *Error naming file:line.
func Load(opts Options) (*RuleSet, error) {
	var (
		errs  []error
		rules []*Rule
		index = map[string]int{}
	)
	add := func(rs []*Rule, builtin bool) {
		for _, r := range rs {
			if i, ok := index[r.ID]; ok {
				if prev := rules[i]; !builtin && strings.HasPrefix(prev.File, builtinPrefix) {
					rules[i] = r // a file overrides a default rule
					continue
				}
				errs = append(errs, &Error{File: r.File, Line: r.Line, Rule: r.ID,
					Reason: fmt.Sprintf("duplicate id (also in %s:%d)", rules[i].File, rules[i].Line)})
				continue
			}
			index[r.ID] = len(rules)
			rules = append(rules, r)
		}
	}
	if !opts.NoBuiltin {
		rs, err := loadFS(defaultrules.FS, builtinPrefix)
		if err != nil {
			return nil, fmt.Errorf("built-in rules: %w", err)
		}
		add(rs, true)
	}
	paths, err := expandFiles(opts.Files)
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read rule file: %w", err))
			continue
		}
		rs, err := ParseFile(p, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		add(rs, false)
	}
	sids := map[int]*Rule{}
	for _, r := range rules {
		if o := sids[r.SignatureID]; o != nil {
			errs = append(errs, &Error{File: r.File, Line: r.Line, Rule: r.ID,
				Reason: fmt.Sprintf("sid %d already used by rule %s (%s:%d); set a distinct sid", r.SignatureID, o.ID, o.File, o.Line)})
		}
		sids[r.SignatureID] = r
	}
	opts = dropRetired(opts, index)
	for _, id := range opts.Disabled {
		i, ok := index[id]
		if !ok {
			errs = append(errs, fmt.Errorf("disabled rule %q: no such rule", id))
			continue
		}
		c := *rules[i]
		c.Disabled = true
		rules[i] = &c
	}
	for _, id := range sortedKeys(anyMap(opts.Params)) {
		i, ok := index[id]
		if !ok {
			errs = append(errs, fmt.Errorf("params for rule %q: no such rule", id))
			continue
		}
		c := *rules[i]
		var perr []error
		for _, name := range sortedKeys(opts.Params[id]) {
			if err := c.SetParam(name, opts.Params[id][name]); err != nil {
				perr = append(perr, err)
			}
		}
		if len(perr) == 0 {
			if err := c.compile(); err != nil {
				perr = append(perr, fmt.Errorf("rule %s with the configured params: %w", id, err))
			}
		}
		if len(perr) > 0 {
			errs = append(errs, perr...)
			continue
		}
		rules[i] = &c
	}
	errs = append(errs, overrideSuppress(rules, index, opts.Suppress)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &RuleSet{Rules: rules, opts: opts, baselines: opts.Baselines}, nil
}

func overrideSuppress(rules []*Rule, index map[string]int, windows map[string]time.Duration) []error {
	var errs []error
	set := func(i int, d time.Duration) {
		c := *rules[i]
		c.Suppress = d
		rules[i] = &c
	}
	if d, ok := windows["*"]; ok {
		for i := range rules {
			set(i, d)
		}
	}
	for id, d := range windows {
		if d < 0 {
			errs = append(errs, fmt.Errorf("suppress window for %q: %s is negative", id, d))
			continue
		}
		if id == "*" {
			continue
		}
		i, ok := index[id]
		if !ok {
			errs = append(errs, fmt.Errorf("suppress window for rule %q: no such rule", id))
			continue
		}
		set(i, d)
	}
	return errs
}

// retiredRules are built-in rule ids that are gone, and where their job
// went: a config naming one still loads.
var retiredRules = map[string]string{
	"fingerprint_drift": "drift of own servers is the watch list's now (`stackprint watch`, alert watch_drift); rules.baselines are imported into it at start",
}

// dropRetired takes retired built-in ids out of opts' disabled, params
// and suppress lists, with a warning, unless a rule file defines the id
// again (then it is that rule's).
func dropRetired(opts Options, defined map[string]int) Options {
	warn := func(id, where string) {
		if opts.Logger != nil {
			opts.Logger.Warn("rules: "+where+" names the retired rule "+id+"; ignored", "why", retiredRules[id])
		}
	}
	var disabled []string
	for _, id := range opts.Disabled {
		if _, redefined := defined[id]; !redefined && retiredRules[id] != "" {
			warn(id, "rules.disabled")
			continue
		}
		disabled = append(disabled, id)
	}
	opts.Disabled = disabled
	for id := range retiredRules {
		if _, redefined := defined[id]; redefined {
			continue
		}
		if _, ok := opts.Params[id]; ok {
			warn(id, "rules.params")
			opts.Params = maps.Clone(opts.Params)
			delete(opts.Params, id)
		}
		if _, ok := opts.Suppress[id]; ok {
			warn(id, "rules.suppress")
			opts.Suppress = maps.Clone(opts.Suppress)
			delete(opts.Suppress, id)
		}
	}
	return opts
}

func anyMap(m map[string]map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k := range m {
		out[k] = nil
	}
	return out
}

const builtinPrefix = "builtin:"

func loadFS(fsys fs.FS, prefix string) ([]*Rule, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*Rule
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		rs, err := ParseFile(prefix+n, data)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// expandFiles resolves directories and glob patterns; a literal path that
// does not exist is an error, a pattern that matches nothing is not.
func expandFiles(specs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, s := range specs {
		if strings.ContainsAny(s, "*?[") {
			m, err := filepath.Glob(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("rule file pattern %q: %w", s, err))
				continue
			}
			slices.Sort(m)
			out = append(out, m...)
			continue
		}
		st, err := os.Stat(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule file: %w", err))
			continue
		}
		if !st.IsDir() {
			out = append(out, s)
			continue
		}
		ents, err := os.ReadDir(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule directory: %w", err))
			continue
		}
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				out = append(out, filepath.Join(s, e.Name()))
			}
		}
	}
	return out, errors.Join(errs...)
}

// Active returns the rules that run, in order.
func (s *RuleSet) Active() []*Rule {
	var out []*Rule
	for _, r := range s.Rules {
		if !r.Disabled {
			out = append(out, r)
		}
	}
	return out
}

// Engine runs a rule set over judged events. It implements enrich.Judge
// and is safe for concurrent use.
//
// Engine is a handle: copies share the rule set, the suppression table and
// the counters. The zero Engine runs only the walking skeleton's built-in
// db_match rule (every DB match alerts, severity from its confidence) with
// no suppression; use New for rule files.
type Engine struct {
	st *engineState
}

type engineState struct {
	set     atomic.Pointer[RuleSet]
	sup     *suppressor
	log     *slog.Logger
	now     func() time.Time
	reload  sync.Mutex // serialises Reload
	loads   atomic.Uint64
	loadErr atomic.Uint64
	lastErr atomic.Pointer[string]

	fired, suppressed, evalErr atomic.Uint64
	warned                     sync.Map // *Rule → struct{}: first evaluation error logged once per rule
}

// Stats are the engine's counters since New.
type Stats struct {
	Rules         int    // active rules
	Reloads       uint64 // successful loads, the first included
	ReloadErrors  uint64 // failed reloads (the previous rules kept running)
	LastError     string // of the last failed reload, "" when none
	Fired         uint64 // verdicts returned
	Suppressed    uint64 // verdicts held back by a suppression window
	EvalErrors    uint64 // expression runtime errors (the rule did not fire)
	Simulation    bool
	SuppressTable int // keys currently tracked
}

// New loads the rules of opts and returns an engine running them.
func New(opts Options) (*Engine, error) {
	set, err := Load(opts)
	if err != nil {
		return nil, err
	}
	capacity := opts.SuppressCapacity
	if capacity <= 0 {
		capacity = 100000
	}
	st := &engineState{sup: newSuppressor(capacity), log: opts.Logger, now: opts.Now}
	if st.log == nil {
		st.log = slog.New(slog.DiscardHandler)
	}
	if st.now == nil {
		st.now = time.Now
	}
	st.set.Store(set)
	st.loads.Add(1)
	return &Engine{st: st}, nil
}

// Reload loads the rules of opts and swaps them in atomically; events being
// judged finish with the old set. On error the running rules stay, the
// error is counted (Stats.ReloadErrors) and returned. Suppression windows
// carry over by rule id. Logger, Now and SuppressCapacity of opts are
// ignored: they are fixed at New.
func (e *Engine) Reload(opts Options) error {
	if e == nil || e.st == nil {
		return errors.New("rules: reload of an engine not made by New")
	}
	e.st.reload.Lock()
	defer e.st.reload.Unlock()
	set, err := Load(opts)
	if err != nil {
		e.st.loadErr.Add(1)
		msg := err.Error()
		e.st.lastErr.Store(&msg)
		return fmt.Errorf("reload rules (previous rules kept): %w", err)
	}
	e.st.set.Store(set)
	e.st.loads.Add(1)
	e.st.lastErr.Store(nil)
	return nil
}

// RuleSet returns the rules running now.
func (e Engine) RuleSet() *RuleSet {
	if e.st == nil {
		return nil
	}
	return e.st.set.Load()
}

// Stats returns a snapshot of the counters.
func (e Engine) Stats() Stats {
	if e.st == nil {
		return Stats{}
	}
	set := e.st.set.Load()
	s := Stats{
		Rules:         len(set.Active()),
		Reloads:       e.st.loads.Load(),
		ReloadErrors:  e.st.loadErr.Load(),
		Fired:         e.st.fired.Load(),
		Suppressed:    e.st.suppressed.Load(),
		EvalErrors:    e.st.evalErr.Load(),
		Simulation:    set.opts.Simulation,
		SuppressTable: e.st.sup.len(),
	}
	if p := e.st.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Judge runs every active rule on one event and returns a verdict per rule
// that fired and is outside its suppression window. Rules that need no DB
// match (drift, HTTP) only see events when the caller judges every probed
// event, not only matched ones.
func (e Engine) Judge(ev stackprint.Event, r stackprint.Result, m []stackprint.Match) []stackprint.Verdict {
	return e.JudgeRest(ev, r, m, nil)
}

// JudgeRest is Judge without the rules in done: the scheduler judges an
// event first with its server's fingerprints and again once its own
// name's certificate and HTTP header are in, and a rule that fired the
// first time neither fires nor counts as suppressed the second.
func (e Engine) JudgeRest(ev stackprint.Event, r stackprint.Result, m []stackprint.Match, done []string) []stackprint.Verdict {
	if e.st == nil {
		return slices.DeleteFunc(judgeDBMatch(stackprint.ExactMatches(m)), func(v stackprint.Verdict) bool { return slices.Contains(done, v.Rule) })
	}
	set := e.st.set.Load()
	var (
		base  Baseline
		known bool
	)
	if set.baselines != nil {
		base, known = set.baselines.Baseline(ev.Target())
	}
	var exact, nearM []stackprint.Match
	for _, x := range m {
		if x.Exact() {
			exact = append(exact, x)
		} else {
			nearM = append(nearM, x)
		}
	}
	matches, idx := envMatches(exact)
	nears, nidx := envNears(nearM)
	env := newEnv(ev, r, matches, nears, base, known)
	match0, nearest0 := env.Match, env.Nearest
	now := ev.TS
	if now.IsZero() {
		now = e.st.now()
	}
	var out []stackprint.Verdict
	for _, rule := range set.Rules {
		if rule.Disabled || slices.Contains(done, rule.ID) {
			continue
		}
		fired, which := e.eval(rule, &env)
		sev := ""
		var values map[string]string
		if fired {
			sev = e.severity(rule, &env)
			values = factValues(rule, &env)
		}
		env.Match, env.Nearest = match0, nearest0
		if !fired {
			continue
		}
		v := stackprint.Verdict{
			Rule:        rule.ID,
			Severity:    sev,
			RuleName:    rule.Name,
			Description: rule.Description,
			Category:    rule.Category,
			SignatureID: rule.SignatureID,
			Tags:        rule.Tags,
			Simulated:   set.opts.Simulation || rule.Simulate,
			Values:      values,
		}
		switch {
		case which >= 0 && rule.EachNear:
			v.Match = nearM[nidx[which]]
		case which >= 0:
			v.Match = exact[idx[which]]
		}
		if rule.Suppress > 0 {
			ok, n := e.st.sup.allow(supKey{orig: ev.Orig.Addr(), target: ev.Target(), rule: rule.ID}, now, rule.Suppress)
			if !ok {
				e.st.suppressed.Add(1)
				continue
			}
			v.Suppressed = n
		}
		e.st.fired.Add(1)
		out = append(out, v)
	}
	return out
}

// eval runs rule's condition; which is the index into env.Matches of the
// match the verdict is about, -1 for none.
func (e Engine) eval(rule *Rule, env *Env) (fired bool, which int) {
	if rule.EachNear {
		for i := range env.Near {
			env.Nearest = env.Near[i]
			if e.run(rule, rule.when, env) {
				return true, i
			}
		}
		return false, -1
	}
	if !rule.EachMatch {
		ok := e.run(rule, rule.when, env)
		if ok && len(env.Matches) > 0 {
			return true, 0
		}
		return ok, -1
	}
	// Matches are strongest first, so the verdict names the strongest
	// match that satisfies the rule. The match stays bound for the
	// severity expression; JudgeRest restores it.
	for i := range env.Matches {
		env.Match = env.Matches[i]
		if e.run(rule, rule.when, env) {
			return true, i
		}
	}
	return false, -1
}

func (e Engine) run(rule *Rule, prog *vm.Program, env *Env) bool {
	out, err := vm.Run(prog, env)
	if err != nil {
		e.evalError(rule, err)
		return false
	}
	b, _ := out.(bool)
	return b
}

func (e Engine) severity(rule *Rule, env *Env) string {
	if rule.severity == nil {
		return rule.Severity
	}
	out, err := vm.Run(rule.severity, env)
	if err != nil {
		e.evalError(rule, err)
		return rule.Severity
	}
	if s, _ := out.(string); ValidSeverity(s) {
		return s
	}
	e.evalError(rule, fmt.Errorf("severity_expr gave %v, not a severity", out))
	return rule.Severity
}

func (e Engine) evalError(rule *Rule, err error) {
	e.st.evalErr.Add(1)
	// Once per loaded rule at warn: a broken rule on a busy sensor must not
	// flood the log; the counter keeps the total.
	if _, seen := e.st.warned.LoadOrStore(rule, struct{}{}); !seen {
		e.st.log.Warn("rule evaluation failed; rule did not fire (further errors of this rule counted, not logged)",
			"rule", rule.ID, "file", rule.File, "err", err)
		return
	}
	e.st.log.Debug("rule evaluation failed", "rule", rule.ID, "err", err)
}

// RuleDBMatch is the id of the fingerprint-DB match rule.
const RuleDBMatch = "db_match"

// judgeDBMatch is the zero Engine's rule: one verdict for the strongest DB
// match, so an analyst sees the most confident reason first.
func judgeDBMatch(m []stackprint.Match) []stackprint.Verdict {
	if len(m) == 0 {
		return nil
	}
	best := m[0]
	for _, x := range m[1:] {
		if confidenceWeight(x.Confidence) > confidenceWeight(best.Confidence) {
			best = x
		}
	}
	return []stackprint.Verdict{{Rule: RuleDBMatch, Severity: Severity(best.Confidence), Match: best,
		Category: DefaultCategory, SignatureID: sidBase + 1}}
}

// Severity maps a DB entry's confidence to an alert severity.
func Severity(confidence string) string {
	switch confidence {
	case "high":
		return "high"
	case "low":
		return "low"
	default:
		return "medium"
	}
}

// maxValueLen bounds one formatted value in Verdict.Values.
const maxValueLen = 256

// factValues evaluates the facts rule's condition read, with the match
// under test still bound.
func factValues(rule *Rule, env *Env) map[string]string {
	if len(rule.values) == 0 {
		return nil
	}
	out := make(map[string]string, len(rule.values))
	for _, v := range rule.values {
		x, err := vm.Run(v.prog, env)
		if err != nil {
			continue
		}
		s := fmt.Sprintf("%v", x)
		if t, ok := x.(time.Time); ok {
			s = t.UTC().Format(time.RFC3339)
		}
		if len(s) > maxValueLen {
			s = s[:maxValueLen] + "…"
		}
		out[v.name] = s
	}
	return out
}
