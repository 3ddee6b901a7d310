// Package rules decides which judged events become alerts: YAML rule files
// whose conditions are github.com/expr-lang/expr expressions over the
// event, its target's probe result, the DB matches and the target's
// baseline.
//
// # Rule files
//
//	version: 1
//	rules:
//	  - id: db_match                # [a-z][a-z0-9_]*, unique; names the rule in every output
//	    name: TLS server fingerprint in the fingerprint DB
//	    description: Why it matters, for the analyst.
//	    severity: medium            # info, low, medium, high, critical
//	    severity_expr: 'match.confidence == "high" ? "high" : "medium"'   # optional
//	    category: A Network Trojan was detected   # EVE alert.category, ECS rule.category
//	    sid: 1900001                # EVE alert.signature_id; derived from the id when absent
//	    tags: [fingerprint-db]
//	    each_match: true            # run once per DB match, match bound to it
//	    params: {min_weight: 0.6}   # constants, overridable from the config
//	    when: match.kind == "jarm" && match.weight >= params.min_weight
//	    suppress: 1h                # one alert per (orig ip, target, rule) per window
//	    simulate: false             # alerts of this rule are marked simulated
//	    disabled: false
//
// Keys are strict: an unknown key is an error. Both expressions are
// compiled and type-checked when the file is loaded (stackprint rules
// check, daemon start, SIGHUP reload); errors name file:line:col. params
// are substituted as constants before type checking, so a regex param used
// with matches is compiled once, at load.
//
// The default rules (configs/rules, embedded) are db_match, atsf_score,
// sslbl_cert and jarm_http_server. A rule file that defines one of their
// ids replaces it. fingerprint_drift is retired: drift of own servers is
// the watch list's (package watch, alert watch_drift); a config that still
// names it in rules.disabled, params or suppress loads, with a warning.
//
// # Environment
//
// Every name below is always present; an absent fact is "", 0, false or an
// empty list, so no nil checks are needed.
//
//	event.ts event.uid event.flow_id event.conn_id event.orig_ip event.orig_port
//	event.resp_ip event.resp_port event.sni event.source event.kind
//
//	probe.status probe.error probe.conns probe.duration (seconds)
//	probe.jarm probe.jarm_raw probe.has_jarm (false for the all-zero JARM)
//	probe.kind_status.jarm|atsf|cert|http   status of each kind probed
//	probe.atsf.id probe.atsf.fingerprint
//	probe.cert.sha256 probe.cert.sha1 (lower-case hex) probe.cert.subject probe.cert.issuer
//	probe.cert.serial probe.cert.sans probe.cert.not_before probe.cert.not_after
//	probe.cert.self_signed probe.cert.key_type probe.cert.key_bits probe.cert.sig_alg
//	probe.http.fetched probe.http.status_code probe.http.server
//
//	matches                list of DB matches, strongest first (weight, then score)
//	match                  the match under test (each_match), else matches[0], else empty (kind "")
//	match.kind             jarm, atsf, cert_sha256, cert_sha1
//	match.value match.label match.source match.confidence match.category
//	match.weight           confidence as a number: high 1.0, medium 0.6, low 0.3
//	match.block_count match.top_count   servers on block / top lists seen with the fingerprint
//	match.observations     block_count + top_count
//	match.score            block_count / observations (docs/ATSF.md), 0 with no observations
//
//	baseline.known         the target is a monitored server with a recorded baseline
//	baseline.jarm baseline.atsf baseline.cert_sha256 baseline.recorded
//
//	in_cidr(ip, prefix...) true when ip is in one of the prefixes
//
// plus expr's built-ins (any, all, filter, len, matches, startsWith, ...).
//
// What the daemon supplies: the event and result as the pipeline has them;
// the DB matches with their record's counts (match.category, block_count
// and top_count stay 0/"" until stackprint.Match carries them); baselines
// through Options.Baselines (StaticBaselines from the config, or a source
// backed by the observations DB). Rules that need no DB match
// (a rule over baseline.*, and any rule on probe facts alone) only run
// when the caller judges every probed event, not only matched ones.
//
// # Suppression
//
// A rule with suppress: D alerts at most once per (orig ip, target, rule)
// per window D, measured in event time; the next alert after the window
// carries the number of events suppressed in between
// (Verdict.Suppressed). The table is in memory and bounded
// (Options.SuppressCapacity): after a restart or an eviction the next event
// alerts again. Replayed events keep their deterministic alert ids, so
// SIEMs dedup them.
//
// # Reload and simulation
//
// Engine.Reload builds a new RuleSet and swaps it in atomically; a bad
// file keeps the old rules running and counts the error. With
// Options.Simulation (or a rule's simulate: true) verdicts are marked
// Simulated: outputs write them marked and keep them out of the Zeek Intel
// and Suricata dataset feeds.
package rules
